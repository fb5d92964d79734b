import { useState, type FormEvent, type KeyboardEvent } from 'react';
import type { Todo, TodoUpdate } from '../api';

interface Props {
  todo: Todo;
  onUpdate: (id: number, changes: TodoUpdate) => Promise<boolean>;
  onDelete: (id: number) => Promise<boolean>;
}

export function TodoItem({ todo, onUpdate, onDelete }: Props) {
  const [editing, setEditing] = useState(false);
  const [draft, setDraft] = useState(todo.title);
  const [busy, setBusy] = useState(false);

  async function run(action: () => Promise<boolean>): Promise<boolean> {
    setBusy(true);
    try {
      return await action();
    } finally {
      setBusy(false);
    }
  }

  function startEditing() {
    setDraft(todo.title);
    setEditing(true);
  }

  async function save(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    if (draft === todo.title) {
      setEditing(false);
      return;
    }
    if (await run(() => onUpdate(todo.id, { title: draft }))) setEditing(false);
  }

  function onKeyDown(event: KeyboardEvent<HTMLInputElement>) {
    if (event.key === 'Escape') setEditing(false);
  }

  return (
    <li data-testid="todo-item" data-todo-id={todo.id} className={todo.done ? 'todo todo--done' : 'todo'}>
      <input
        type="checkbox"
        aria-label={`Done: ${todo.title}`}
        checked={todo.done}
        disabled={busy}
        onChange={() => void run(() => onUpdate(todo.id, { done: !todo.done }))}
      />
      {editing ? (
        <form className="todo__edit" onSubmit={(event) => void save(event)}>
          <input
            type="text"
            aria-label={`Edit title: ${todo.title}`}
            value={draft}
            onChange={(e) => setDraft(e.target.value)}
            onKeyDown={onKeyDown}
            disabled={busy}
            autoFocus
          />
          <button type="submit" disabled={busy}>
            Save
          </button>
          <button type="button" className="secondary" onClick={() => setEditing(false)} disabled={busy}>
            Cancel
          </button>
        </form>
      ) : (
        <>
          <span className="todo__title" onDoubleClick={startEditing}>
            {todo.title}
          </span>
          <button type="button" className="secondary" aria-label={`Edit ${todo.title}`} onClick={startEditing} disabled={busy}>
            Edit
          </button>
          <button
            type="button"
            className="danger"
            aria-label={`Delete ${todo.title}`}
            onClick={() => void run(() => onDelete(todo.id))}
            disabled={busy}
          >
            Delete
          </button>
        </>
      )}
    </li>
  );
}
