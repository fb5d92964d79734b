import { useState, type FormEvent } from 'react';

export function TodoForm({ onAdd }: { onAdd: (title: string) => Promise<boolean> }) {
  const [title, setTitle] = useState('');
  const [busy, setBusy] = useState(false);

  async function submit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    setBusy(true);
    try {
      if (await onAdd(title)) setTitle('');
    } finally {
      setBusy(false);
    }
  }

  return (
    <form className="add" onSubmit={(event) => void submit(event)}>
      <input
        type="text"
        aria-label="New todo"
        placeholder="What needs doing?"
        value={title}
        onChange={(e) => setTitle(e.target.value)}
        disabled={busy}
        autoComplete="off"
      />
      <button type="submit" disabled={busy}>
        Add
      </button>
    </form>
  );
}
