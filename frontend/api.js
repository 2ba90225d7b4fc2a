// The gateway's HTTP API, as the dashboard uses it. Same origin only; every control request
// (POST/PUT) carries `X-Unigw-Client: dashboard`, which a cross-site form or simple fetch
// cannot send, so the gateway can refuse control requests that do not come from this page.

export const CLIENT_HEADER = { "X-Unigw-Client": "dashboard" };

/** An HTTP answer that was not 2xx, with the gateway's OpenAI-style error message. */
export class ApiError extends Error {
  constructor(status, message, code) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
  }
}

/** The message of an OpenAI error envelope `{"error": {"message", "type", "code"}}`, if any. */
export function errorMessage(body, fallback) {
  const err = body && typeof body === "object" ? body.error : null;
  if (err && typeof err === "object" && err.message) return String(err.message);
  if (typeof err === "string") return err;
  return fallback;
}

async function readJson(response) {
  const text = await response.text();
  if (!text) return null;
  try {
    return JSON.parse(text);
  } catch {
    return { error: { message: text.slice(0, 500) } };
  }
}

/** Send one request; resolve to the parsed JSON body, or throw an ApiError. */
export async function request(method, path, body, { signal } = {}) {
  const headers = { Accept: "application/json" };
  if (method !== "GET") Object.assign(headers, CLIENT_HEADER);
  const init = { method, headers, signal, cache: "no-store", credentials: "same-origin" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let response;
  try {
    response = await fetch(path, init);
  } catch (err) {
    if (err.name === "AbortError") throw err;
    const why = err.name === "TimeoutError" ? "the gateway did not answer in time" : "cannot reach the gateway";
    throw new ApiError(0, why, "unreachable");
  }
  const data = await readJson(response);
  if (!response.ok) {
    const fallback = `${response.status} ${response.statusText || "error"}`.trim();
    const code = data && data.error && data.error.code;
    throw new ApiError(response.status, errorMessage(data, fallback), code);
  }
  return data;
}

export const getProviders = (opts) => request("GET", "/providers", undefined, opts);
export const getConfig = () => request("GET", "/config");
export const putStrategy = (strategy) => request("PUT", "/config", { strategy });
export const getModels = () => request("GET", "/v1/models");

/** `action` is start, stop or restart; `name` a provider name, or null for every provider. */
export function control(action, name) {
  const path = name === null
    ? `/providers/${action}-all`
    : `/providers/${encodeURIComponent(name)}/${action}`;
  return request("POST", path);
}

/** Store a provider's missing secret (the value is sent once and answered with its name only). */
export function storeSecret(provider, name, value) {
  return request("POST", `/providers/${encodeURIComponent(provider)}/secret`, { name, value });
}

export function getLogs(name, lines = 200) {
  return request("GET", `/providers/${encodeURIComponent(name)}/logs?n=${lines}`);
}

/** The request log, newest first: `{n, provider, failed, since}`, each optional (null: absent). */
export function getRequests(params = {}) {
  const query = new URLSearchParams();
  for (const [key, value] of Object.entries(params)) {
    if (value !== null && value !== undefined && value !== "") query.set(key, String(value));
  }
  return request("GET", `/requests?${query}`);
}
