// Typed client for the todo backend.
//
// The base URL comes from VITE_API_BASE_URL at build time; the default ''
// means "same origin", which is how both the Vite dev server (proxy) and the
// nginx production image (reverse proxy) serve the API.
//
// The types are the backend's own, from its OpenAPI document: api-schema.d.ts is
// generated from it (openapi-typescript), and `inv lint` fails when it no longer matches.

import type { components } from './api-schema';

type Schemas = components['schemas'];

export type Todo = Schemas['TodoRead'];
export type TodoPage = Schemas['TodoList'];
export type Health = Schemas['HealthStatus'];
/** A POST body: the title only (a new todo is not done). */
type TodoCreate = Pick<Schemas['TodoCreate'], 'title'>;

/** A PATCH body: a field left out stays as it is (null is not a value). */
export type TodoUpdate = Schemas['TodoUpdate'];

/** One entry of FastAPI's 422 `detail` array: the fields the client reads. */
export type ValidationIssue = Pick<Schemas['ValidationError'], 'loc' | 'msg'>;

export interface FieldError {
  /** Dotted location without the leading "body"/"query"/"path", e.g. "title". */
  field: string;
  message: string;
}

export class ApiError extends Error {
  /** HTTP status, or 0 when the request never got a response. */
  readonly status: number;
  readonly fieldErrors: FieldError[];
  readonly body: unknown;

  constructor(message: string, status: number, fieldErrors: FieldError[] = [], body: unknown = undefined) {
    super(message);
    this.name = 'ApiError';
    this.status = status;
    this.fieldErrors = fieldErrors;
    this.body = body;
  }
}

const LOCATION_PREFIXES = new Set(['body', 'query', 'path', 'header', 'cookie']);

function isValidationIssue(value: unknown): value is ValidationIssue {
  return (
    typeof value === 'object' &&
    value !== null &&
    Array.isArray((value as ValidationIssue).loc) &&
    typeof (value as ValidationIssue).msg === 'string'
  );
}

export function toFieldErrors(detail: unknown): FieldError[] {
  if (!Array.isArray(detail)) return [];
  return detail.filter(isValidationIssue).map((issue) => {
    const loc = issue.loc.length > 1 && LOCATION_PREFIXES.has(String(issue.loc[0])) ? issue.loc.slice(1) : issue.loc;
    return { field: loc.map(String).join('.'), message: issue.msg };
  });
}

function statusLine(response: Response): string {
  return `${response.status}${response.statusText ? ` ${response.statusText}` : ''}`;
}

/** Turn an error response body into a sentence a person can read. */
export function describeError(response: Response, body: unknown): { message: string; fieldErrors: FieldError[] } {
  const detail = typeof body === 'object' && body !== null ? (body as { detail?: unknown }).detail : undefined;

  const fieldErrors = toFieldErrors(detail);
  if (fieldErrors.length > 0) {
    const parts = fieldErrors.map((e) => (e.field ? `${e.field}: ${e.message}` : e.message));
    return { message: `Invalid input: ${parts.join('; ')}`, fieldErrors };
  }
  if (typeof detail === 'string' && detail.trim() !== '') {
    return { message: detail, fieldErrors: [] };
  }
  if (typeof body === 'string' && body.trim() !== '' && body.length <= 200 && !body.trimStart().startsWith('<')) {
    return { message: `${body.trim()} (${statusLine(response)})`, fieldErrors: [] };
  }
  return { message: `Request failed: ${statusLine(response)}`, fieldErrors: [] };
}

async function readBody(response: Response): Promise<unknown> {
  if (response.status === 204) return undefined;
  const text = await response.text();
  if (text === '') return undefined;
  // Parse JSON whatever the content-type says; proxies and test doubles are
  // not always careful with it. Anything else (e.g. an HTML 502 page) stays text.
  try {
    return JSON.parse(text);
  } catch {
    return text;
  }
}

export type FetchLike = (input: string, init?: RequestInit) => Promise<Response>;

export interface ApiClientOptions {
  baseUrl?: string;
  /** Defaults to the global fetch, looked up at call time (so tests can stub it). */
  fetch?: FetchLike;
}

export function createApiClient(options: ApiClientOptions = {}) {
  const baseUrl = (options.baseUrl ?? '').replace(/\/+$/, '');
  const doFetch: FetchLike = options.fetch ?? ((input, init) => globalThis.fetch(input, init));

  async function send(path: string, init: RequestInit = {}): Promise<Response> {
    const headers = new Headers(init.headers);
    headers.set('Accept', 'application/json');
    if (init.body !== undefined) headers.set('Content-Type', 'application/json');
    try {
      return await doFetch(`${baseUrl}${path}`, { ...init, headers });
    } catch (err) {
      const reason = err instanceof Error && err.message ? ` (${err.message})` : '';
      throw new ApiError(`Network error: could not reach the API${reason}`, 0);
    }
  }

  async function request<T>(path: string, init: RequestInit = {}): Promise<T> {
    const response = await send(path, init);
    const body = await readBody(response);
    if (!response.ok) {
      const { message, fieldErrors } = describeError(response, body);
      throw new ApiError(message, response.status, fieldErrors, body);
    }
    return body as T;
  }

  return {
    baseUrl,

    /** Health is returned for 200 and for a 503 "degraded" answer alike. */
    async health(): Promise<Health> {
      const response = await send('/health');
      const body = await readBody(response);
      if (typeof body === 'object' && body !== null && 'status' in body) {
        return body as Health;
      }
      const { message, fieldErrors } = describeError(response, body);
      throw new ApiError(message, response.status, fieldErrors, body);
    },

    listTodos(limit = 20, offset = 0): Promise<TodoPage> {
      const query = new URLSearchParams({ limit: String(limit), offset: String(offset) });
      return request<TodoPage>(`/api/v1/todos?${query}`);
    },

    getTodo(id: number): Promise<Todo> {
      return request<Todo>(`/api/v1/todos/${id}`);
    },

    createTodo(title: string): Promise<Todo> {
      const body: TodoCreate = { title };
      return request<Todo>('/api/v1/todos', { method: 'POST', body: JSON.stringify(body) });
    },

    updateTodo(id: number, changes: TodoUpdate): Promise<Todo> {
      return request<Todo>(`/api/v1/todos/${id}`, { method: 'PATCH', body: JSON.stringify(changes) });
    },

    async deleteTodo(id: number): Promise<void> {
      await request<undefined>(`/api/v1/todos/${id}`, { method: 'DELETE' });
    },
  };
}

export type ApiClient = ReturnType<typeof createApiClient>;

export const api: ApiClient = createApiClient({ baseUrl: import.meta.env.VITE_API_BASE_URL ?? '' });

export function errorMessage(err: unknown): string {
  if (err instanceof Error) return err.message;
  return String(err);
}
