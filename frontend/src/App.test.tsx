import { render, screen, waitFor, within } from '@testing-library/react';
import userEvent from '@testing-library/user-event';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import App from './App';
import { fakeBackend } from './test/fakeBackend';

let backend: ReturnType<typeof fakeBackend>;

beforeEach(() => {
  backend = fakeBackend([{ title: 'Buy milk' }, { title: 'Write tests', done: true }]);
  vi.stubGlobal('fetch', vi.fn(backend.fetch));
});

afterEach(() => {
  vi.unstubAllGlobals();
});

const items = () => screen.findAllByTestId('todo-item');
const titles = async () => (await items()).map((li) => li.querySelector('.todo__title')?.textContent);

describe('App', () => {
  it('renders the heading, the list newest first and the health badge', async () => {
    render(<App />);

    expect(screen.getByRole('heading', { level: 1 })).toHaveTextContent('Todos');
    expect(await titles()).toEqual(['Write tests', 'Buy milk']);
    expect(screen.getByRole('checkbox', { name: 'Done: Write tests' })).toBeChecked();
    expect(screen.getByRole('checkbox', { name: 'Done: Buy milk' })).not.toBeChecked();
    expect(screen.getByTestId('todo-count')).toHaveTextContent('2 todos');

    await waitFor(() => expect(screen.getByTestId('health')).toHaveTextContent('Backend: ok · Database: connected'));
    expect(screen.getByTestId('health')).toHaveAttribute('data-status', 'ok');
    expect(screen.queryByRole('alert')).not.toBeInTheDocument();
    expect(backend.calls.some((c) => c.url === '/api/v1/todos?limit=20&offset=0')).toBe(true);
  });

  it('adds a todo at the top and clears the input', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();

    const input = screen.getByRole('textbox', { name: 'New todo' });
    await user.type(input, '  Walk the dog ');
    await user.click(screen.getByRole('button', { name: 'Add' }));

    await waitFor(async () => expect(await titles()).toEqual(['Walk the dog', 'Write tests', 'Buy milk']));
    expect(input).toHaveValue('');
    expect(backend.calls).toContainEqual({ method: 'POST', url: '/api/v1/todos', body: { title: 'Walk the dog' } });
    expect(screen.getByTestId('todo-count')).toHaveTextContent('3 todos');
  });

  it('does not send an empty title', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();

    await user.click(screen.getByRole('button', { name: 'Add' }));

    expect(await screen.findByRole('alert')).toHaveTextContent('Please enter a title');
    expect(backend.calls.some((c) => c.method === 'POST')).toBe(false);
  });

  it('toggles done', async () => {
    const user = userEvent.setup();
    render(<App />);
    const checkbox = await screen.findByRole('checkbox', { name: 'Done: Buy milk' });

    await user.click(checkbox);

    await waitFor(() => expect(screen.getByRole('checkbox', { name: 'Done: Buy milk' })).toBeChecked());
    expect(backend.calls).toContainEqual({ method: 'PATCH', url: '/api/v1/todos/1', body: { done: true } });
  });

  it('edits a title inline', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();

    await user.click(screen.getByRole('button', { name: 'Edit Buy milk' }));
    const field = screen.getByRole('textbox', { name: 'Edit title: Buy milk' });
    await user.clear(field);
    await user.type(field, 'Buy oat milk{Enter}');

    await waitFor(async () => expect(await titles()).toEqual(['Write tests', 'Buy oat milk']));
    expect(screen.queryByRole('textbox', { name: /Edit title/ })).not.toBeInTheDocument();
    expect(backend.calls).toContainEqual({ method: 'PATCH', url: '/api/v1/todos/1', body: { title: 'Buy oat milk' } });
  });

  it('cancels an edit with Escape', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();

    await user.click(screen.getByRole('button', { name: 'Edit Buy milk' }));
    await user.type(screen.getByRole('textbox', { name: 'Edit title: Buy milk' }), ' later{Escape}');

    expect(await titles()).toEqual(['Write tests', 'Buy milk']);
    expect(backend.calls.some((c) => c.method === 'PATCH')).toBe(false);
  });

  it('deletes a todo', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();

    await user.click(screen.getByRole('button', { name: 'Delete Write tests' }));

    await waitFor(async () => expect(await titles()).toEqual(['Buy milk']));
    expect(backend.calls).toContainEqual({ method: 'DELETE', url: '/api/v1/todos/2', body: undefined });
    expect(screen.getByTestId('todo-count')).toHaveTextContent('1 todo');
  });

  it('shows the 422 field message in the error banner and keeps the input', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();

    const input = screen.getByRole('textbox', { name: 'New todo' });
    await user.click(input);
    await user.paste('x'.repeat(201));
    await user.click(screen.getByRole('button', { name: 'Add' }));

    const alert = await screen.findByRole('alert');
    expect(alert).toHaveTextContent('Invalid input: title: String should have at most 200 characters');
    expect(input).toHaveValue('x'.repeat(201));
    expect(await items()).toHaveLength(2);

    await user.click(within(alert).getByRole('button', { name: 'Dismiss error' }));
    expect(screen.queryByRole('alert')).not.toBeInTheDocument();
  });

  it('shows a 404 from the API and clears the banner after the next success', async () => {
    const user = userEvent.setup();
    render(<App />);
    await items();
    backend.todos.splice(0, 1); // "Buy milk" vanishes on the server

    await user.click(screen.getByRole('checkbox', { name: 'Done: Buy milk' }));
    expect(await screen.findByRole('alert')).toHaveTextContent('Todo 1 not found');

    await user.click(screen.getByRole('checkbox', { name: 'Done: Write tests' }));
    await waitFor(() => expect(screen.queryByRole('alert')).not.toBeInTheDocument());
  });

  it('shows the error banner when the list cannot be loaded', async () => {
    backend.setOverride((call) =>
      call.url.startsWith('/api/v1/todos')
        ? new Response(JSON.stringify({ detail: 'Database unavailable' }), { status: 503 })
        : undefined,
    );
    backend.setHealth(503, {
      status: 'degraded',
      database: 'unavailable',
      db_latency_ms: null,
      migrations: null,
      redis: 'connected',
      version: '0.1.0',
    });
    render(<App />);

    expect(await screen.findByRole('alert')).toHaveTextContent('Database unavailable');
    await waitFor(() => expect(screen.getByTestId('health')).toHaveTextContent('Backend: degraded · Database: unavailable'));
    expect(screen.getByTestId('health')).toHaveAttribute('data-status', 'warn');
    expect(screen.queryAllByTestId('todo-item')).toHaveLength(0);
    expect(screen.getByText('The todo list could not be loaded.')).toBeInTheDocument();
  });

  it('shows the backend as unreachable when fetch fails', async () => {
    vi.stubGlobal('fetch', vi.fn(() => Promise.reject(new TypeError('Failed to fetch'))));
    render(<App />);

    expect(await screen.findByRole('alert')).toHaveTextContent('Network error: could not reach the API');
    await waitFor(() => expect(screen.getByTestId('health')).toHaveTextContent('Backend unreachable'));
    expect(screen.getByTestId('health')).toHaveAttribute('data-status', 'down');
  });

  it('pages through more than one page', async () => {
    backend = fakeBackend(Array.from({ length: 25 }, (_, i) => ({ title: `Task ${i + 1}` })));
    vi.stubGlobal('fetch', vi.fn(backend.fetch));
    const user = userEvent.setup();
    render(<App />);

    expect(await items()).toHaveLength(20);
    expect((await titles())[0]).toBe('Task 25');
    await user.click(screen.getByRole('button', { name: 'Next' }));
    await waitFor(async () => expect(await titles()).toEqual(['Task 5', 'Task 4', 'Task 3', 'Task 2', 'Task 1']));
    expect(screen.getByRole('button', { name: 'Next' })).toBeDisabled();
  });
});
