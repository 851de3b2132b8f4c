// The two case charts, drawn as SVG by Chartist (small, no canvas): cases
// opened and closed by province, and per week.

import { BarChart, LineChart } from "chartist";

export interface Series {
  labels: string[];
  opened: number[];
  closed: number[];
  openedLabel: string;
  closedLabel: string;
}

function legend(chart: HTMLElement, series: Series): void {
  const box = chart.parentElement?.querySelector(".legend");
  if (!box) {
    return;
  }
  box.replaceChildren(
    ...[
      ["a", series.openedLabel],
      ["b", series.closedLabel],
    ].map(([key, label]) => Object.assign(document.createElement("span"), { className: `key-${key}`, textContent: label })),
  );
}

export class CaseCharts {
  private byProvince: BarChart;
  private byWeek: LineChart;

  constructor(
    private provinceBox: HTMLElement,
    private weekBox: HTMLElement,
  ) {
    const axisY = { onlyInteger: true, low: 0 };
    this.byProvince = new BarChart(provinceBox, { labels: [], series: [] }, { axisY, seriesBarDistance: 12 });
    this.byWeek = new LineChart(weekBox, { labels: [], series: [] }, { axisY, fullWidth: true, chartPadding: { right: 24 } });
  }

  provinces(series: Series): void {
    this.byProvince.update({ labels: series.labels, series: [series.opened, series.closed] });
    legend(this.provinceBox, series);
  }

  weeks(series: Series): void {
    this.byWeek.update({ labels: series.labels, series: [series.opened, series.closed] });
    legend(this.weekBox, series);
  }
}
