/** An expected failure with a one-line message: the CLI prints `lutham: <message>` and exits 1. */
export class LuthamError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'LuthamError';
  }
}
