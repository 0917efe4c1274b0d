/**
 * A backoff sleep that `stop()` can cut short: the API-server workers wait between
 * retries, and a stopping member must not wait out a 30 s backoff.
 */
export class InterruptibleSleep {
  private wakeCurrent: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const done = (): void => {
        clearTimeout(timer);
        this.wakeCurrent = null;
        resolve();
      };
      const timer = setTimeout(done, ms);
      this.wakeCurrent = done;
    });
  }

  /** Ends the sleep in progress, if any, at once. */
  wake(): void {
    this.wakeCurrent?.();
  }
}
