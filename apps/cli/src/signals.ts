// Waiting for the signal that stops a foreground command (manager, agent, whoami).

export interface SignalWait {
  received: Promise<NodeJS.Signals>;
  /** Stops listening (when the command ends for another reason). */
  cancel(): void;
}

/** Starts listening at once, so a signal that comes during startup is not missed. */
export function nextSignal(signals: NodeJS.Signals[] = ["SIGINT", "SIGTERM"]): SignalWait {
  let onSignal: (signal: NodeJS.Signals) => void = () => {};
  const cancel = () => {
    for (const s of signals) process.off(s, onSignal);
  };
  const received = new Promise<NodeJS.Signals>((resolve) => {
    onSignal = (signal) => {
      cancel();
      resolve(signal);
    };
  });
  for (const s of signals) process.on(s, onSignal);
  return { received, cancel };
}
