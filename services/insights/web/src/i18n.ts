// The page's words in Korean and English. Codes on the wire (provinces,
// stages, owners, statuses, event types) are translated here; anything
// unknown is shown as it came.

export type Language = "ko" | "en";

const words = {
  title: { ko: "OneStop 인사이트", en: "OneStop Insights" },
  month: { ko: "월", en: "Month" },
  province: { ko: "지역", en: "Province" },
  allProvinces: { ko: "전국", en: "All provinces" },
  needToken: {
    ko: "대시보드 또는 기관 토큰을 붙여 넣으세요.",
    en: "Paste a dashboard or agency token.",
  },
  open: { ko: "열기", en: "Open" },
  buyerTarget: { ko: "검증 바이어 목표 달성", en: "Vetted buyers against the target" },
  allOffices: { ko: "전체 무역관", en: "All trade offices" },
  consultations: { ko: "상담 예약", en: "Consultations booked" },
  companies: { ko: "기업", en: "Companies" },
  buyers: { ko: "바이어", en: "Buyers" },
  cases: { ko: "지원 건", en: "Cases" },
  opened: { ko: "접수", en: "Opened" },
  closed: { ko: "종결", en: "Closed" },
  medianDelivered: { ko: "전체 연계까지 중앙값", en: "Median to all delivered" },
  owner: { ko: "담당", en: "Owner" },
  status: { ko: "상태", en: "Status" },
  needs: { ko: "요청", en: "Needs" },
  casesByProvince: { ko: "지역별 지원 건", en: "Cases by province" },
  casesByWeek: { ko: "주별 지원 건", en: "Cases per week" },
  funnel: { ko: "기관별 연계 현황", en: "Referral funnel by agency" },
  agency: { ko: "기관", en: "Agency" },
  sent: { ko: "의뢰", en: "Sent" },
  accepted: { ko: "수락", en: "Accepted" },
  declined: { ko: "거절", en: "Declined" },
  completed: { ko: "완료", en: "Completed" },
  slaBreached: { ko: "기한 초과", en: "SLA breaches" },
  medianAccept: { ko: "수락까지 중앙값", en: "Median to accept" },
  advisors: { ko: "전문위원", en: "Advisors" },
  kind: { ko: "유형", en: "Kind" },
  load: { ko: "담당 / 정원", en: "Load / capacity" },
  waitlist: { ko: "대기", en: "Waitlist" },
  overdue: { ko: "연락 지연", en: "Overdue contacts" },
  deals: { ko: "계약", en: "Deals" },
  confirmedValue: { ko: "확정 금액", en: "Confirmed value" },
  dealsConfirmed: { ko: "확정", en: "Confirmed" },
  confirmed: { ko: "확정", en: "Confirmed" },
  fees: { ko: "수수료 청구", en: "Fees charged" },
  market: { ko: "시장", en: "Market" },
  ticker: { ko: "최근 이벤트", en: "Latest events" },
  nothingYet: { ko: "아직 없음", en: "Nothing yet" },
  live: { ko: "실시간", en: "Live" },
  updated: { ko: "갱신", en: "updated" },
  reconnecting: { ko: "다시 연결하는 중…", en: "Reconnecting…" },
  denied: { ko: "이 토큰으로는 볼 수 없습니다.", en: "This token may not read these figures." },
  expired: { ko: "토큰이 없거나 만료되었습니다.", en: "The token is missing or expired." },
  agencyScope: { ko: "기관 범위", en: "Agency scope" },
  seconds: { ko: "초", en: "s" },
  minutes: { ko: "분", en: "min" },
  hours: { ko: "시간", en: "h" },
  days: { ko: "일", en: "d" },
} as const;

export type Word = keyof typeof words;

const provinces: Record<string, [string, string]> = {
  "KR-11": ["서울", "Seoul"],
  "KR-26": ["부산", "Busan"],
  "KR-27": ["대구", "Daegu"],
  "KR-28": ["인천", "Incheon"],
  "KR-29": ["광주", "Gwangju"],
  "KR-30": ["대전", "Daejeon"],
  "KR-31": ["울산", "Ulsan"],
  "KR-50": ["세종", "Sejong"],
  "KR-41": ["경기", "Gyeonggi"],
  "KR-51": ["강원", "Gangwon"],
  "KR-43": ["충북", "Chungbuk"],
  "KR-44": ["충남", "Chungnam"],
  "KR-52": ["전북", "Jeonbuk"],
  "KR-46": ["전남", "Jeonnam"],
  "KR-47": ["경북", "Gyeongbuk"],
  "KR-48": ["경남", "Gyeongnam"],
  "KR-49": ["제주", "Jeju"],
};

const codes: Record<string, [string, string]> = {
  // need owners
  MENTORING: ["멘토링", "Mentoring"],
  BUYERS: ["바이어 발굴", "Buyer discovery"],
  REFERRAL: ["기관 연계", "Agency referral"],
  // need statuses
  OPEN: ["접수", "Open"],
  ROUTED: ["연계됨", "Routed"],
  IN_PROGRESS: ["진행 중", "In progress"],
  DONE: ["완료", "Done"],
  CANCELLED: ["취소", "Cancelled"],
  // advisor kinds
  AGENCY_STAFF: ["기관 직원", "Agency staff"],
  RETIRED_EXPERT: ["퇴직 전문가", "Retired expert"],
  HOME_DOCTOR: ["수출 홈닥터", "Home doctor"],
};

const events: Record<string, [string, string]> = {
  "company.registered": ["기업 등록", "Company registered"],
  "company.updated": ["기업 정보 변경", "Company updated"],
  "company.assessed": ["수출 역량 진단", "Readiness assessed"],
  "company.stage_changed": ["성장 단계 변경", "Stage changed"],
  "case.opened": ["지원 건 접수", "Case opened"],
  "need.opened": ["요청 접수", "Need opened"],
  "need.delivered": ["요청 연계", "Need delivered"],
  "need.status_changed": ["요청 상태 변경", "Need moved"],
  "buyer.registered": ["바이어 등록", "Buyer registered"],
  "buyer.vetted": ["바이어 검증", "Buyer vetted"],
  "match.proposed": ["매칭 제안", "Match proposed"],
  "match.advanced": ["매칭 진행", "Match advanced"],
  "deal.recorded": ["계약 기록", "Deal recorded"],
  "deal.confirmed": ["계약 확정", "Deal confirmed"],
  "consultation.booked": ["상담 예약", "Consultation booked"],
  "sample.started": ["샘플 테스트 시작", "Sample test started"],
  "sample.feedback": ["샘플 피드백", "Sample feedback"],
  "sample.certification_gap": ["인증 필요", "Certification gap"],
  "followup.due": ["후속 조치 기한", "Follow-up due"],
  "lead.reactivation": ["재접촉 대상", "Lead to reactivate"],
  "advisor.registered": ["전문위원 등록", "Advisor registered"],
  "advisor.updated": ["전문위원 정보 변경", "Advisor updated"],
  "advisor.deactivated": ["전문위원 해촉", "Advisor deactivated"],
  "assignment.created": ["전문위원 배정", "Advisor assigned"],
  "assignment.waitlisted": ["배정 대기", "Waitlisted"],
  "assignment.reassigned": ["전문위원 교체", "Advisor changed"],
  "assignment.handover_started": ["인수인계 시작", "Handover started"],
  "assignment.ended": ["배정 종료", "Assignment ended"],
  "session.logged": ["상담 기록", "Session logged"],
  "contact.overdue": ["연락 지연", "Contact overdue"],
  "fee.charged": ["수수료 청구", "Fee charged"],
  "agency.upserted": ["기관 정보", "Agency updated"],
  "program.upserted": ["사업 정보", "Program updated"],
  "program.capacity_changed": ["사업 정원 변경", "Program capacity"],
  "referral.created": ["연계 생성", "Referral created"],
  "referral.routed": ["기관 연계", "Referral routed"],
  "referral.unroutable": ["연계 불가", "Referral unroutable"],
  "referral.accepted": ["연계 수락", "Referral accepted"],
  "referral.declined": ["연계 거절", "Referral declined"],
  "referral.rerouted": ["재연계", "Referral re-routed"],
  "referral.sla_breached": ["응답 기한 초과", "SLA breached"],
  "referral.started": ["지원 시작", "Referral started"],
  "referral.completed": ["지원 완료", "Referral completed"],
  "referral.failed": ["지원 실패", "Referral failed"],
  "referral.cancelled": ["연계 취소", "Referral cancelled"],
  "referral.exhausted": ["연계 소진", "Referral exhausted"],
};

const pick = (pair: [string, string] | undefined, language: Language, fallback: string) =>
  pair ? pair[language === "ko" ? 0 : 1] : fallback;

export class Words {
  constructor(readonly language: Language) {}

  t(word: Word): string {
    return words[word][this.language];
  }

  province(code: string): string {
    return pick(provinces[code], this.language, code || "–");
  }

  code(value: string): string {
    return pick(codes[value], this.language, value);
  }

  event(type: string): string {
    return pick(events[type], this.language, type);
  }

  number(value: number | bigint): string {
    return new Intl.NumberFormat(this.language === "ko" ? "ko-KR" : "en-US").format(value);
  }

  usd(cents: bigint): string {
    return new Intl.NumberFormat(this.language === "ko" ? "ko-KR" : "en-US", {
      style: "currency",
      currency: "USD",
      maximumFractionDigits: 0,
    }).format(Number(cents) / 100);
  }

  money(currency: string, minor: bigint): string {
    const format = new Intl.NumberFormat(this.language === "ko" ? "ko-KR" : "en-US", {
      style: "currency",
      currency,
    });
    const digits = format.resolvedOptions().maximumFractionDigits ?? 2;
    return format.format(Number(minor) / 10 ** digits);
  }

  /** A duration in the unit that reads best: seconds, minutes, hours, days. */
  duration(seconds: number): string {
    if (seconds < 60) {
      return `${Math.round(seconds)} ${this.t("seconds")}`;
    }
    if (seconds < 3600) {
      return `${Math.round(seconds / 60)} ${this.t("minutes")}`;
    }
    const hours = seconds / 3600;
    if (hours >= 48) {
      return `${(hours / 24).toFixed(1)} ${this.t("days")}`;
    }
    return `${hours.toFixed(1)} ${this.t("hours")}`;
  }

  time(date: Date): string {
    return date.toLocaleTimeString(this.language === "ko" ? "ko-KR" : "en-GB", {
      timeZone: "Asia/Seoul",
      hour12: false,
    });
  }

  static provinceCodes(): string[] {
    return Object.keys(provinces);
  }
}

/** The language the page starts in: remembered, else the browser's. */
export function initialLanguage(): Language {
  const stored = localStorage.getItem("onestop.language");
  if (stored === "ko" || stored === "en") {
    return stored;
  }
  return navigator.language.toLowerCase().startsWith("ko") ? "ko" : "en";
}
