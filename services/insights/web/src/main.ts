// The dashboard page: one WatchIndicators stream over gRPC-Web, a fresh
// snapshot rendered whenever the server sends one, reconnecting with
// backoff when the stream breaks. Filters restart the stream.

import { Code, ConnectError, createClient, type Interceptor } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { InsightsService } from "./gen/onestop/insights/v1/service_pb";
import type { Indicators } from "./gen/onestop/insights/v1/resources_pb";
import { Dashboard } from "./render";
import { Words, initialLanguage, type Language, type Word } from "./i18n";
import { forgetToken, keepToken, takeToken } from "./token";

function byId<T extends HTMLElement>(id: string): T {
  return document.getElementById(id) as T;
}

function seoulMonth(): string {
  // "YYYY-MM" of today in Asia/Seoul, as the server counts months.
  const parts = new Intl.DateTimeFormat("en-CA", { timeZone: "Asia/Seoul", year: "numeric", month: "2-digit" }).formatToParts(new Date());
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? "";
  return `${get("year")}-${get("month")}`;
}

let words = new Words(initialLanguage());
let dashboard: Dashboard | undefined;
let latest: Indicators | undefined;
let watching: AbortController | undefined;

function translatePage(): void {
  document.documentElement.lang = words.language;
  document.title = words.t("title");
  for (const node of document.querySelectorAll<HTMLElement>("[data-i18n]")) {
    node.textContent = words.t(node.dataset.i18n as Word);
  }
  byId<HTMLButtonElement>("language").textContent = words.language === "ko" ? "EN" : "한국어";
  const select = byId<HTMLSelectElement>("province");
  const chosen = select.value;
  select.replaceChildren(
    new Option(words.t("allProvinces"), ""),
    ...Words.provinceCodes().map((code) => new Option(words.province(code), code)),
  );
  select.value = chosen;
}

function status(kind: "live" | "down", message: string): void {
  const node = byId("status");
  node.className = kind;
  node.textContent = message;
}

function show(snapshot: Indicators): void {
  dashboard?.render(snapshot);
  const at = snapshot.computedAt ? new Date(Number(snapshot.computedAt.seconds) * 1000) : new Date();
  const scope = snapshot.agencyId ? ` · ${words.t("agencyScope")}: ${snapshot.agencyId}` : "";
  status("live", `${words.t("live")} · ${words.t("updated")} ${words.time(at)}${scope}`);
}

async function watch(token: string): Promise<void> {
  watching?.abort();
  const controller = new AbortController();
  watching = controller;
  const authorize: Interceptor = (next) => (request) => {
    request.header.set("authorization", `Bearer ${token}`);
    return next(request);
  };
  const client = createClient(
    InsightsService,
    createGrpcWebTransport({ baseUrl: location.origin, interceptors: [authorize] }),
  );
  const filter = {
    period: { startMonth: byId<HTMLInputElement>("month").value, endMonth: "" },
    province: byId<HTMLSelectElement>("province").value,
    agencyId: "",
  };
  let wait = 500;
  while (!controller.signal.aborted) {
    try {
      for await (const snapshot of client.watchIndicators({ filter }, { signal: controller.signal })) {
        wait = 500;
        latest = snapshot;
        show(snapshot);
      }
    } catch (error) {
      if (controller.signal.aborted) {
        return;
      }
      const code = error instanceof ConnectError ? error.code : Code.Unknown;
      if (code === Code.Unauthenticated || code === Code.PermissionDenied) {
        status("down", words.t(code === Code.Unauthenticated ? "expired" : "denied"));
        if (code === Code.Unauthenticated) {
          forgetToken();
          showSignIn();
        }
        return;
      }
      status("down", words.t("reconnecting"));
    }
    await new Promise((resume) => setTimeout(resume, wait));
    wait = Math.min(wait * 2, 10_000);
  }
}

function showSignIn(): void {
  byId("sign-in").hidden = false;
  byId("tiles").hidden = true;
}

function start(token: string): void {
  byId("sign-in").hidden = true;
  byId("tiles").hidden = false;
  dashboard ??= new Dashboard(words);
  void watch(token);
}

function setLanguage(language: Language): void {
  localStorage.setItem("onestop.language", language);
  words = new Words(language);
  dashboard?.setWords(words);
  translatePage();
  if (latest) {
    show(latest);
  }
}

function main(): void {
  translatePage();
  byId<HTMLInputElement>("month").value = seoulMonth();
  byId("language").addEventListener("click", () => setLanguage(words.language === "ko" ? "en" : "ko"));
  const restart = () => {
    const token = takeToken();
    if (token) {
      void watch(token);
    }
  };
  byId("month").addEventListener("change", restart);
  byId("province").addEventListener("change", restart);
  byId("token-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const token = byId<HTMLInputElement>("token").value.trim();
    if (token) {
      keepToken(token);
      start(token);
    }
  });
  const token = takeToken();
  if (token) {
    start(token);
  } else {
    showSignIn();
  }
}

main();
