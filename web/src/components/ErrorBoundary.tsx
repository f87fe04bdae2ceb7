/**
 * Never a blank screen: a render error anywhere below shows a message and a
 * way back instead of unmounting the whole app. `resetKey` (the location)
 * clears the error when the user navigates elsewhere.
 */

import { Component, type ErrorInfo, type ReactNode } from "react";

interface Props {
  children: ReactNode;
  resetKey?: string;
}

interface State {
  error: Error | null;
  resetKey?: string;
}

export class ErrorBoundary extends Component<Props, State> {
  state: State = { error: null, resetKey: this.props.resetKey };

  static getDerivedStateFromError(error: Error): Partial<State> {
    return { error };
  }

  static getDerivedStateFromProps(props: Props, state: State): Partial<State> | null {
    if (props.resetKey !== state.resetKey) return { error: null, resetKey: props.resetKey };
    return null;
  }

  componentDidCatch(error: Error, info: ErrorInfo): void {
    console.error("render error", error, info.componentStack);
  }

  render() {
    if (!this.state.error) return this.props.children;
    return (
      <div className="alert" role="alert">
        <p>
          <strong>Something went wrong on this page.</strong> Please reload, or go back to the{" "}
          <a href="/">catalog</a>.
        </p>
        <button type="button" className="button secondary" onClick={() => window.location.reload()}>
          Reload
        </button>
      </div>
    );
  }
}
