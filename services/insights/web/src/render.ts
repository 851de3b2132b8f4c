// Writes a snapshot of the indicators into the page's tiles.

import type { Indicators, TargetProgress } from "./gen/onestop/insights/v1/resources_pb";
import { NeedOwner } from "./gen/onestop/common/v1/common_pb";
import type { Duration } from "@bufbuild/protobuf/wkt";
import { CaseCharts } from "./charts";
import { Words } from "./i18n";

function element<T extends HTMLElement = HTMLElement>(id: string): T {
  const found = document.getElementById(id);
  if (!found) {
    throw new Error(`the page lacks #${id}`);
  }
  return found as T;
}

function text(id: string, value: string): void {
  const target = element(id);
  if (target.textContent !== value) {
    target.textContent = value;
  }
}

function cell(value: string, tag: "td" | "th" = "td"): HTMLElement {
  const node = document.createElement(tag);
  node.textContent = value;
  return node;
}

function row(...values: string[]): HTMLTableRowElement {
  const tr = document.createElement("tr");
  tr.append(...values.map((v) => cell(v)));
  return tr;
}

function seconds(duration: Duration | undefined): number | undefined {
  return duration ? Number(duration.seconds) + duration.nanos / 1e9 : undefined;
}

function ownerCode(owner: NeedOwner): string {
  return NeedOwner[owner]?.replace(/^NEED_OWNER_/, "") ?? String(owner);
}

export class Dashboard {
  private charts: CaseCharts;
  private seenEvents = new Set<string>();

  constructor(private words: Words) {
    this.charts = new CaseCharts(element("province-chart"), element("week-chart"));
  }

  setWords(words: Words): void {
    this.words = words;
  }

  private progress(barId: string, textId: string, progress: TargetProgress | undefined): void {
    const count = Number(progress?.count ?? 0n);
    const target = Number(progress?.target ?? 0n);
    const bar = element<HTMLProgressElement>(barId);
    bar.max = Math.max(target, 1);
    bar.value = Math.min(count, bar.max);
    text(textId, `${this.words.number(count)} / ${this.words.number(target)}`);
  }

  render(indicators: Indicators): void {
    const w = this.words;
    const scoped = indicators.agencyId !== "" && !indicators.buyerVetting;
    for (const id of ["buyer-target", "consultations", "cases", "cases-by-province", "cases-by-week", "advisors", "deals"]) {
      const tile = document.querySelector<HTMLElement>(`[data-testid="${id}"]`);
      if (tile) {
        tile.hidden = scoped;
      }
    }

    const vetting = indicators.buyerVetting;
    this.progress("vetted-total-bar", "vetted-total", vetting?.verified);
    const offices = element("offices");
    offices.replaceChildren(
      ...(vetting?.tradeOffices ?? []).map((office) => {
        const li = document.createElement("li");
        li.dataset.office = office.tradeOfficeId;
        const bar = document.createElement("progress");
        const count = Number(office.verified?.count ?? 0n);
        const target = Number(office.verified?.target ?? 0n);
        bar.max = Math.max(target, 1);
        bar.value = Math.min(count, bar.max);
        const figure = document.createElement("strong");
        figure.textContent = `${w.number(count)} / ${w.number(target)}`;
        li.append(cell(office.tradeOfficeId, "td"), bar, figure);
        li.firstElementChild?.replaceWith(Object.assign(document.createElement("span"), { textContent: office.tradeOfficeId }));
        return li;
      }),
    );

    const consultations = indicators.consultations;
    this.progress("consult-companies-bar", "consult-companies", consultations?.companies);
    this.progress("consult-buyers-bar", "consult-buyers", consultations?.buyers);

    const cases = indicators.cases;
    text("cases-opened", w.number(cases?.opened ?? 0n));
    text("cases-closed", w.number(cases?.closed ?? 0n));
    const median = seconds(cases?.medianTimeToAllDelivered);
    text("cases-median", median === undefined ? "–" : w.duration(median));
    element("needs").replaceChildren(
      ...(cases?.needs ?? []).map((need) =>
        row(w.code(ownerCode(need.owner)), w.code(need.status), w.number(need.needs)),
      ),
    );

    const byProvince = new Map<string, { opened: number; closed: number }>();
    for (const group of cases?.groups ?? []) {
      const entry = byProvince.get(group.province) ?? { opened: 0, closed: 0 };
      entry.opened += Number(group.opened);
      entry.closed += Number(group.closed);
      byProvince.set(group.province, entry);
    }
    const provinces = [...byProvince.keys()].sort();
    this.charts.provinces({
      labels: provinces.map((code) => w.province(code)),
      opened: provinces.map((code) => byProvince.get(code)!.opened),
      closed: provinces.map((code) => byProvince.get(code)!.closed),
      openedLabel: w.t("opened"),
      closedLabel: w.t("closed"),
    });
    const weeks = cases?.weeks ?? [];
    this.charts.weeks({
      labels: weeks.map((week) => week.weekStart.slice(5)),
      opened: weeks.map((week) => Number(week.opened)),
      closed: weeks.map((week) => Number(week.closed)),
      openedLabel: w.t("opened"),
      closedLabel: w.t("closed"),
    });

    const funnel = element("funnel");
    funnel.replaceChildren(
      ...indicators.referralFunnel.map((agency) => {
        const total = agency.total;
        const accept = seconds(total?.medianTimeToAccept);
        const tr = row(
          agency.agencyId,
          w.number(total?.sent ?? 0n),
          w.number(total?.accepted ?? 0n),
          w.number(total?.declined ?? 0n),
          w.number(total?.completed ?? 0n),
          w.number(total?.slaBreached ?? 0n),
          accept === undefined ? "–" : w.duration(accept),
        );
        tr.dataset.agency = agency.agencyId;
        return tr;
      }),
    );
    if (indicators.referralFunnel.length === 0) {
      const empty = row(w.t("nothingYet"));
      empty.className = "empty";
      funnel.replaceChildren(empty);
    }

    const advisors = indicators.advisors;
    element("advisor-kinds").replaceChildren(
      ...(advisors?.kinds ?? []).map((kind) =>
        row(w.code(kind.kind), `${w.number(kind.activeCompanies)} / ${w.number(kind.capacity)}`),
      ),
    );
    text("waitlist", w.number(advisors?.waitlist ?? 0n));
    text("overdue", w.number(advisors?.overdueContacts ?? 0n));

    const deals = indicators.deals;
    text("deal-value", w.usd(deals?.confirmedValueUsdCents ?? 0n));
    text("deals-confirmed", w.number(deals?.confirmed ?? 0n));
    const fees = indicators.fees?.charged ?? [];
    text("fees", fees.length ? fees.map((m) => w.money(m.currencyCode, m.amountMinor)).join(" · ") : "–");
    element("markets").replaceChildren(
      ...(deals?.markets ?? []).slice(0, 8).map((market) =>
        row(market.market, w.number(market.confirmed), w.usd(market.confirmedValueUsdCents)),
      ),
    );

    const ticker = element("ticker");
    const firstRender = this.seenEvents.size === 0;
    ticker.replaceChildren(
      ...indicators.recentEvents.map((event) => {
        const key = `${event.source}/${event.eventId}`;
        const li = document.createElement("li");
        li.dataset.type = event.type;
        if (!firstRender && !this.seenEvents.has(key)) {
          li.className = "fresh";
        }
        this.seenEvents.add(key);
        const time = document.createElement("time");
        const at = event.occurredAt ? new Date(Number(event.occurredAt.seconds) * 1000) : undefined;
        time.textContent = at ? w.time(at) : "";
        const source = Object.assign(document.createElement("span"), { className: "source", textContent: w.event(event.type) });
        const summary = Object.assign(document.createElement("span"), { textContent: event.summary });
        li.append(time, source, summary);
        return li;
      }),
    );
    if (indicators.recentEvents.length === 0) {
      ticker.replaceChildren(Object.assign(document.createElement("li"), { className: "empty", textContent: w.t("nothingYet") }));
    }
  }
}
