import type { Health, Todo } from '../api';

export interface Call {
  method: string;
  url: string;
  body: unknown;
}

const json = (status: number, body: unknown) =>
  new Response(JSON.stringify(body), { status, headers: { 'Content-Type': 'application/json' } });

/**
 * A tiny in-memory stand-in for the FastAPI backend, used as `fetch` in tests.
 * `override` lets a test answer a given request itself (e.g. with an error).
 */
export function fakeBackend(initial: Array<Pick<Todo, 'title'> & Partial<Todo>> = []) {
  let nextId = 1;
  const stamp = '2026-01-01T00:00:00Z';
  const todos: Todo[] = initial.map((t) => ({
    id: nextId++,
    done: false,
    created_at: stamp,
    updated_at: stamp,
    ...t,
  }));
  const calls: Call[] = [];
  let health: { status: number; body: Health } = {
    status: 200,
    body: {
      status: 'ok',
      database: 'connected',
      db_latency_ms: 1.2,
      migrations: 'current',
      redis: 'connected',
      version: '0.1.0',
    },
  };
  let override: ((call: Call) => Response | Promise<Response> | undefined) | undefined;

  const fetch = async (input: RequestInfo | URL, init: RequestInit = {}): Promise<Response> => {
    const href = typeof input === 'string' ? input : input instanceof URL ? input.href : input.url;
    const url = new URL(href, 'http://localhost');
    const method = (init.method ?? 'GET').toUpperCase();
    const body: unknown = typeof init.body === 'string' ? JSON.parse(init.body) : undefined;
    const call = { method, url: url.pathname + url.search, body };
    calls.push(call);

    const overridden = override?.(call);
    if (overridden) return overridden;

    if (url.pathname === '/health') return json(health.status, health.body);

    if (url.pathname === '/api/v1/todos') {
      if (method === 'GET') {
        const limit = Number(url.searchParams.get('limit') ?? 20);
        const offset = Number(url.searchParams.get('offset') ?? 0);
        const newestFirst = [...todos].reverse();
        return json(200, { items: newestFirst.slice(offset, offset + limit), total: todos.length, limit, offset });
      }
      if (method === 'POST') {
        const title = (body as { title?: string }).title ?? '';
        if (title.length === 0 || title.length > 200) {
          return json(422, {
            detail: [{ loc: ['body', 'title'], msg: 'String should have at most 200 characters', type: 'string_too_long' }],
          });
        }
        const todo: Todo = { id: nextId++, title, done: false, created_at: stamp, updated_at: stamp };
        todos.push(todo);
        return json(201, todo);
      }
    }

    const match = /^\/api\/v1\/todos\/(\d+)$/.exec(url.pathname);
    if (match) {
      const id = Number(match[1]);
      const index = todos.findIndex((t) => t.id === id);
      if (index === -1) return json(404, { detail: `Todo ${id} not found` });
      if (method === 'GET') return json(200, todos[index]);
      if (method === 'PATCH') {
        todos[index] = { ...todos[index], ...(body as Partial<Todo>), updated_at: '2026-01-02T00:00:00Z' };
        return json(200, todos[index]);
      }
      if (method === 'DELETE') {
        todos.splice(index, 1);
        return new Response(null, { status: 204 });
      }
    }
    return json(404, { detail: 'Not Found' });
  };

  return {
    fetch,
    calls,
    todos,
    setHealth(status: number, body: Health) {
      health = { status, body };
    },
    setOverride(fn: typeof override) {
      override = fn;
    },
  };
}
