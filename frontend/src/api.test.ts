import { describe, expect, it, vi } from 'vitest';
import { ApiError, createApiClient, toFieldErrors, type FetchLike } from './api';

const json = (status: number, body: unknown, statusText = '') =>
  new Response(JSON.stringify(body), { status, statusText, headers: { 'Content-Type': 'application/json' } });

function clientReturning(response: Response | (() => Promise<Response>)) {
  const fetch = vi.fn(typeof response === 'function' ? response : () => Promise.resolve(response));
  return { client: createApiClient({ fetch }), fetch };
}

async function caught(promise: Promise<unknown>): Promise<ApiError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(ApiError);
    return err as ApiError;
  }
  throw new Error('expected the call to fail');
}

describe('api client errors', () => {
  it('turns a 422 into readable field messages', async () => {
    const { client } = clientReturning(
      json(422, {
        detail: [
          { loc: ['body', 'title'], msg: 'String should have at least 1 character', type: 'string_too_short' },
          { loc: ['body', 'done'], msg: 'Input should be a valid boolean', type: 'bool_parsing' },
        ],
      }),
    );

    const err = await caught(client.createTodo(''));

    expect(err.status).toBe(422);
    expect(err.fieldErrors).toEqual([
      { field: 'title', message: 'String should have at least 1 character' },
      { field: 'done', message: 'Input should be a valid boolean' },
    ]);
    expect(err.message).toBe(
      'Invalid input: title: String should have at least 1 character; done: Input should be a valid boolean',
    );
  });

  it('uses the detail string of a 404', async () => {
    const { client } = clientReturning(json(404, { detail: 'Todo 5 not found' }, 'Not Found'));
    const err = await caught(client.getTodo(5));
    expect(err.status).toBe(404);
    expect(err.message).toBe('Todo 5 not found');
    expect(err.fieldErrors).toEqual([]);
  });

  it('uses the detail string of a 503', async () => {
    const { client } = clientReturning(json(503, { detail: 'Database unavailable' }));
    const err = await caught(client.listTodos());
    expect(err.status).toBe(503);
    expect(err.message).toBe('Database unavailable');
  });

  it('reports a network failure with status 0', async () => {
    const { client } = clientReturning(() => Promise.reject(new TypeError('Failed to fetch')));
    const err = await caught(client.listTodos());
    expect(err.status).toBe(0);
    expect(err.message).toBe('Network error: could not reach the API (Failed to fetch)');
  });

  it('falls back to the status line for an HTML error page', async () => {
    const { client } = clientReturning(
      new Response('<html><body>502 Bad Gateway</body></html>', {
        status: 502,
        statusText: 'Bad Gateway',
        headers: { 'Content-Type': 'text/html' },
      }),
    );
    const err = await caught(client.deleteTodo(1));
    expect(err.status).toBe(502);
    expect(err.message).toBe('Request failed: 502 Bad Gateway');
  });

  it('keeps locations that are not request parts', () => {
    expect(toFieldErrors([{ loc: ['query', 'limit'], msg: 'too big' }])).toEqual([{ field: 'limit', message: 'too big' }]);
    expect(toFieldErrors([{ loc: ['body'], msg: 'Field required' }])).toEqual([{ field: 'body', message: 'Field required' }]);
    expect(toFieldErrors('nope')).toEqual([]);
  });
});

describe('api client requests', () => {
  it('prefixes the base URL and sends JSON', async () => {
    const todo = { id: 3, title: 'x', done: true, created_at: 'a', updated_at: 'b' };
    const fetch = vi.fn<FetchLike>(() => Promise.resolve(json(200, todo)));
    const client = createApiClient({ baseUrl: 'http://api.example/', fetch });

    await expect(client.updateTodo(3, { done: true })).resolves.toEqual(todo);

    const [url, init = {}] = fetch.mock.calls[0];
    expect(url).toBe('http://api.example/api/v1/todos/3');
    expect(init.method).toBe('PATCH');
    expect(init.body).toBe('{"done":true}');
    expect(new Headers(init.headers).get('Content-Type')).toBe('application/json');
  });

  it('lists with limit and offset on the same origin by default', async () => {
    const fetch = vi.fn<FetchLike>(() => Promise.resolve(json(200, { items: [], total: 0, limit: 5, offset: 10 })));
    const client = createApiClient({ fetch });
    await client.listTodos(5, 10);
    expect(fetch.mock.calls[0]?.[0]).toBe('/api/v1/todos?limit=5&offset=10');
  });

  it('resolves a 204 delete to undefined', async () => {
    const { client } = clientReturning(new Response(null, { status: 204 }));
    await expect(client.deleteTodo(1)).resolves.toBeUndefined();
  });

  it('returns a degraded health body from a 503', async () => {
    const { client } = clientReturning(json(503, { status: 'degraded', database: 'unavailable' }));
    await expect(client.health()).resolves.toEqual({ status: 'degraded', database: 'unavailable' });
  });
});
