// Deep links: the URL's hash names the open view (#run=<id>, #agent=<name>[&service=<name>],
// #trace=<id>, #event=<seq>), so a reload or a shared URL reopens it.

const KEYS = ["run", "agent", "service", "trace", "event"];

/** The route named by the current hash, e.g. {run: "abc"}; {} when none. */
export function currentRoute() {
  const params = new URLSearchParams(window.location.hash.slice(1));
  const route = {};
  for (const key of KEYS) {
    const value = params.get(key);
    if (value) route[key] = value;
  }
  return route;
}

/** Name a view in the URL (without reloading). */
export function openRoute(route) {
  const params = new URLSearchParams();
  for (const key of KEYS) if (route[key] !== undefined && route[key] !== null) params.set(key, String(route[key]));
  const hash = params.toString();
  if (window.location.hash.slice(1) !== hash) history.replaceState(null, "", hash ? `#${hash}` : " ");
}

/** The view was closed: the URL names none. */
export function closeRoute() {
  if (window.location.hash) history.replaceState(null, "", window.location.pathname + window.location.search);
}
