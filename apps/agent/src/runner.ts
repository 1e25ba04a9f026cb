// kube-proxy's BoundedFrequencyRunner: `run()` asks for a sync; syncs happen
// at most every `minIntervalMs`, at least every `maxIntervalMs` (a periodic
// resync that repairs drift), and again after `retryMs` when one failed.

export interface RunnerOptions {
  minIntervalMs: number;
  maxIntervalMs: number;
  retryMs: number;
}

export class BoundedFrequencyRunner {
  private timer: NodeJS.Timeout | undefined;
  private running = false;
  private again = false;
  private lastRun = 0;
  private stopped = false;

  constructor(
    private readonly fn: () => Promise<void>,
    private readonly options: RunnerOptions,
    private readonly onError: (err: unknown) => void,
  ) {}

  start(): void {
    this.schedule(this.options.maxIntervalMs);
  }

  /** Asks for a sync as soon as the minimum interval allows. */
  run(): void {
    if (this.stopped) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.schedule(Math.max(0, this.lastRun + this.options.minIntervalMs - Date.now()));
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
  }

  private schedule(delayMs: number): void {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => void this.tick(), delayMs);
  }

  private async tick(): Promise<void> {
    if (this.stopped || this.running) return;
    this.running = true;
    this.again = false;
    this.lastRun = Date.now();
    let next = this.options.maxIntervalMs;
    try {
      await this.fn();
    } catch (err) {
      this.onError(err);
      next = this.options.retryMs;
    } finally {
      this.running = false;
    }
    if (this.stopped) return;
    if (this.again) next = Math.min(next, Math.max(0, this.lastRun + this.options.minIntervalMs - Date.now()));
    this.schedule(next);
  }
}
