import { useCallback, useEffect, useRef, useState } from 'react';
import { api as defaultApi, errorMessage, type ApiClient, type Todo, type TodoUpdate } from './api';
import { ErrorBanner } from './components/ErrorBanner';
import { HealthBadge, type HealthState } from './components/HealthBadge';
import { TodoForm } from './components/TodoForm';
import { TodoList } from './components/TodoList';

export const PAGE_SIZE = 20;
const HEALTH_INTERVAL_MS = 15_000;

interface Props {
  /** Injected in tests; the app uses the client configured from VITE_API_BASE_URL. */
  client?: ApiClient;
  healthIntervalMs?: number;
}

export default function App({ client = defaultApi, healthIntervalMs = HEALTH_INTERVAL_MS }: Props) {
  const [todos, setTodos] = useState<Todo[]>([]);
  const [total, setTotal] = useState(0);
  const [offset, setOffset] = useState(0);
  const [loading, setLoading] = useState(true);
  const [loaded, setLoaded] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [health, setHealth] = useState<HealthState>({ kind: 'checking' });
  const mounted = useRef(true);

  const checkHealth = useCallback(async () => {
    try {
      const result = await client.health();
      if (mounted.current) setHealth({ kind: 'ok', health: result });
    } catch (err) {
      if (mounted.current) setHealth({ kind: 'error', message: errorMessage(err) });
    }
  }, [client]);

  const load = useCallback(
    async (newOffset: number) => {
      try {
        const page = await client.listTodos(PAGE_SIZE, newOffset);
        if (!mounted.current) return;
        setTodos(page.items);
        setTotal(page.total);
        setOffset(page.offset ?? newOffset);
        setLoaded(true);
      } catch (err) {
        if (mounted.current) setError(errorMessage(err));
      } finally {
        if (mounted.current) setLoading(false);
      }
    },
    [client],
  );

  useEffect(() => {
    mounted.current = true;
    // load() sets state only once the list has arrived (after its await), never synchronously
    // in the effect; the rule cannot see that through the async function.
    // eslint-disable-next-line react-hooks/set-state-in-effect
    void load(0);
    void checkHealth();
    const timer = window.setInterval(() => void checkHealth(), healthIntervalMs);
    return () => {
      mounted.current = false;
      window.clearInterval(timer);
    };
  }, [load, checkHealth, healthIntervalMs]);

  /** Runs a mutation; shows its error in the banner and reports success. */
  async function attempt(action: () => Promise<void>): Promise<boolean> {
    try {
      await action();
      setError(null);
      return true;
    } catch (err) {
      setError(errorMessage(err));
      void checkHealth();
      return false;
    }
  }

  const addTodo = (rawTitle: string) => {
    const title = rawTitle.trim();
    if (title === '') {
      setError('Please enter a title for the new todo.');
      return Promise.resolve(false);
    }
    return attempt(async () => {
      const created = await client.createTodo(title);
      if (offset === 0) {
        setTodos((current) => [created, ...current.filter((t) => t.id !== created.id)].slice(0, PAGE_SIZE));
        setTotal((n) => n + 1);
      } else {
        await load(0);
      }
    });
  };

  const updateTodo = (id: number, changes: TodoUpdate) =>
    attempt(async () => {
      const next = { ...changes };
      if (next.title !== undefined) {
        next.title = next.title.trim();
        if (next.title === '') throw new Error('A todo needs a title.');
      }
      const updated = await client.updateTodo(id, next);
      setTodos((current) => current.map((t) => (t.id === id ? updated : t)));
    });

  const deleteTodo = (id: number) =>
    attempt(async () => {
      await client.deleteTodo(id);
      const remaining = todos.filter((t) => t.id !== id);
      setTodos(remaining);
      setTotal((n) => Math.max(0, n - 1));
      if (remaining.length === 0 && offset > 0) await load(Math.max(0, offset - PAGE_SIZE));
    });

  const remainingCount = todos.filter((t) => !t.done).length;
  const hasPrev = offset > 0;
  const hasNext = offset + todos.length < total;

  return (
    <main className="app">
      <header className="app__header">
        <h1>Todos</h1>
        <HealthBadge state={health} />
      </header>

      <ErrorBanner message={error} onDismiss={() => setError(null)} />

      <TodoForm onAdd={addTodo} />

      {loading ? (
        <p className="empty" role="status">
          Loading…
        </p>
      ) : loaded ? (
        <TodoList todos={todos} onUpdate={updateTodo} onDelete={deleteTodo} />
      ) : (
        <p className="empty">The todo list could not be loaded.</p>
      )}

      <footer className="app__footer">
        <span data-testid="todo-count">
          {total} {total === 1 ? 'todo' : 'todos'}
          {todos.length > 0 ? `, ${remainingCount} open on this page` : ''}
        </span>
        {(hasPrev || hasNext) && (
          <span className="pager">
            <button type="button" className="secondary" disabled={!hasPrev} onClick={() => void load(Math.max(0, offset - PAGE_SIZE))}>
              Previous
            </button>
            <button type="button" className="secondary" disabled={!hasNext} onClick={() => void load(offset + PAGE_SIZE)}>
              Next
            </button>
          </span>
        )}
      </footer>
    </main>
  );
}
