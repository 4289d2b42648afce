/** Errors of the Batch AI API as a person reads them: no DOM, no JupyterLab, unit-tested. */

/** A failed API call: the service's error code and its message (what, where, what to do). */
export class ApiError extends Error {
  constructor(
    readonly code: string,
    message: string,
    readonly status: number
  ) {
    super(message);
  }
}

/** The message of an error body `{"error", "message"}`, or a plain description of the reply. */
export function errorFromReply(status: number, body: string): ApiError {
  try {
    const parsed = JSON.parse(body);
    if (parsed && typeof parsed.message === 'string') {
      return new ApiError(String(parsed.error || 'Error'), parsed.message, status);
    }
  } catch {
    // not JSON: described below
  }
  if (status === 403 || status === 401) {
    return new ApiError('NotAuthorized', 'the Jupyter server refused the request; reload the page and log in again', status);
  }
  if (status === 404) {
    return new ApiError('NotFound', 'the Batch AI service is not enabled in this Jupyter server (batchai_jupyter extension)', status);
  }
  return new ApiError('HttpError', `the Batch AI service answered HTTP ${status}`, status);
}
