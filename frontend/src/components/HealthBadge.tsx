import type { Health } from '../api';

export type HealthState =
  | { kind: 'checking' }
  | { kind: 'ok'; health: Health }
  | { kind: 'error'; message: string };

function describe(state: HealthState): { tone: 'ok' | 'warn' | 'down' | 'unknown'; text: string; title: string } {
  switch (state.kind) {
    case 'checking':
      return { tone: 'unknown', text: 'Checking backend…', title: 'Checking backend health' };
    case 'error':
      return { tone: 'down', text: 'Backend unreachable', title: state.message };
    case 'ok': {
      const { health } = state;
      const healthy = health.status === 'ok';
      const latency =
        typeof health.db_latency_ms === 'number' ? ` (${health.db_latency_ms.toFixed(1)} ms)` : '';
      const text = `Backend: ${health.status} · Database: ${health.database}${healthy ? latency : ''}`;
      const title = health.version ? `Backend version ${health.version}` : text;
      return { tone: healthy ? 'ok' : 'warn', text, title };
    }
  }
}

export function HealthBadge({ state }: { state: HealthState }) {
  const { tone, text, title } = describe(state);
  return (
    <p className={`health health--${tone}`} data-testid="health" data-status={tone} title={title} aria-live="polite">
      <span className="health__dot" aria-hidden="true" />
      {text}
    </p>
  );
}
