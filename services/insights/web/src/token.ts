// The bearer token: taken from the URL fragment (#token=...), which the
// browser never sends to a server, kept in this tab's sessionStorage, and
// removed from the address bar at once so it is not bookmarked or shared.
// It leaves the page only as the authorization header of API calls.

const KEY = "onestop.token";

export function takeToken(): string | null {
  const fragment = new URLSearchParams(location.hash.replace(/^#/, ""));
  const fromUrl = fragment.get("token");
  if (fromUrl) {
    sessionStorage.setItem(KEY, fromUrl);
    history.replaceState(null, "", location.pathname + location.search);
  }
  return sessionStorage.getItem(KEY);
}

export function keepToken(token: string): void {
  sessionStorage.setItem(KEY, token);
}

export function forgetToken(): void {
  sessionStorage.removeItem(KEY);
}
