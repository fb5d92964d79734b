import type { Todo, TodoUpdate } from '../api';
import { TodoItem } from './TodoItem';

interface Props {
  todos: Todo[];
  onUpdate: (id: number, changes: TodoUpdate) => Promise<boolean>;
  onDelete: (id: number) => Promise<boolean>;
}

export function TodoList({ todos, onUpdate, onDelete }: Props) {
  if (todos.length === 0) {
    return <p className="empty">Nothing to do yet.</p>;
  }
  return (
    <ul className="todos" aria-label="Todos">
      {todos.map((todo) => (
        <TodoItem key={todo.id} todo={todo} onUpdate={onUpdate} onDelete={onDelete} />
      ))}
    </ul>
  );
}
