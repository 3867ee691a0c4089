/** A cap on open outbound peer connections, shared by an agent's swarm sessions. */
export class ConnectionBudget {
  private open = 0;

  constructor(readonly max: number) {}

  tryAcquire(): boolean {
    if (this.open >= this.max) return false;
    this.open++;
    return true;
  }

  release(): void {
    this.open = Math.max(0, this.open - 1);
  }

  get inUse(): number {
    return this.open;
  }
}
