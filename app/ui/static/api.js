// The service's HTTP API as the page uses it: the API key as a header on every call, errors as ApiError carrying
// the API's own {"error": {"type", "message"}}, and Server-Sent Events read with fetch (EventSource cannot send
// headers, so it cannot carry the key).

const KEY_STORAGE = "paddleocr-vl.api-key";

export class ApiError extends Error {
  constructor(status, type, message, requestId = null) {
    super(message);
    this.status = status;
    this.type = type;
    this.requestId = requestId;
  }
}

// The key lives in sessionStorage: it survives reloads of this tab, not the browser session.
export const apiKey = {
  get: () => sessionStorage.getItem(KEY_STORAGE),
  set: (key) => sessionStorage.setItem(KEY_STORAGE, key),
  clear: () => sessionStorage.removeItem(KEY_STORAGE),
};

function headers(extra = {}) {
  const key = apiKey.get();
  return key ? { ...extra, Authorization: `Bearer ${key}` } : extra;
}

async function toApiError(response) {
  let body = null;
  try {
    body = await response.json();
  } catch {
    // not JSON (a proxy's error page): fall back to the status line
  }
  const error = body && body.error;
  if (error && error.message) {
    return new ApiError(response.status, error.type || "error", error.message, error.request_id || null);
  }
  return new ApiError(response.status, "http_error", `${response.status} ${response.statusText || "error"}`);
}

// fetch() with the key; resolves to the Response when it is 2xx, throws ApiError otherwise. A 503 with
// Retry-After (busy, warming up) is retried a few times before it is reported.
export async function request(path, { method = "GET", body = null, accept = null, signal = null, retries = 3 } = {}) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(path, {
        method, body, signal, headers: headers(accept ? { Accept: accept } : {}), cache: "no-store",
      });
    } catch (err) {
      if (err.name === "AbortError") throw err;
      throw new ApiError(0, "network_error", `cannot reach the service (${err.message})`);
    }
    if (response.ok) return response;
    const retryAfter = Number(response.headers.get("Retry-After"));
    if (response.status === 503 && retryAfter > 0 && attempt < retries) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(retryAfter, 10) * 1000));
      continue;
    }
    throw await toApiError(response);
  }
}

export async function getJson(path, options = {}) {
  return (await request(path, options)).json();
}

// Reads an SSE stream; calls onEvent(kind, data) per event. Resolves when the server ends the stream.
export async function readEvents(path, onEvent, signal) {
  const response = await request(path, { accept: "text/event-stream", signal, retries: 0 });
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value.replace(/\r\n?/g, "\n");
    let end;
    while ((end = buffer.indexOf("\n\n")) >= 0) {
      const frame = buffer.slice(0, end);
      buffer = buffer.slice(end + 2);
      let kind = "message";
      const data = [];
      for (const line of frame.split("\n")) {
        if (line.startsWith("event:")) kind = line.slice(6).trim();
        else if (line.startsWith("data:")) data.push(line.slice(5).replace(/^ /, ""));
      }
      if (data.length) onEvent(kind, JSON.parse(data.join("\n")));
    }
  }
}
