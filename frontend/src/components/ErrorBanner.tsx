export function ErrorBanner({ message, onDismiss }: { message: string | null; onDismiss: () => void }) {
  if (!message) return null;
  return (
    <div className="error" role="alert">
      <span className="error__text">{message}</span>
      <button type="button" className="link" onClick={onDismiss} aria-label="Dismiss error">
        ×
      </button>
    </div>
  );
}
