// The gateway's API as the page calls it. The key lives in sessionStorage and only ever travels
// in the Authorization header, never in a URL.

export const KEY_STORE = "veo-gateway.key";

export class ApiError extends Error {
  constructor(status, body) {
    const error = body && body.error;
    super(error && error.message ? error.message : `HTTP ${status}`);
    this.httpStatus = status;
    this.detail = error || null;
  }
}

export function apiKey() {
  return sessionStorage.getItem(KEY_STORE) || "";
}

export async function api(path, options = {}) {
  const headers = Object.assign({ Authorization: `Bearer ${apiKey()}` }, options.headers || {});
  const response = await fetch(path, Object.assign({}, options, { headers, cache: "no-store" }));
  if (!response.ok) {
    let body = null;
    try {
      body = await response.json();
    } catch (_) {
      body = null;
    }
    throw new ApiError(response.status, body);
  }
  return response;
}

// The API's own words, with its status and the field it names.
export function describeError(error) {
  if (error instanceof ApiError && error.detail) {
    const d = error.detail;
    const where = d.param ? ` (${d.param})` : "";
    return `${d.message}${where} — ${d.status || d.type || "error"} ${d.code || error.httpStatus}`;
  }
  return error && error.message ? error.message : String(error);
}
