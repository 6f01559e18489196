// Small helpers for the human-readable tables of `inspect` and `compare`.

/** 1234567 -> "1,234,567". */
export function num(n: number): string {
  return n.toLocaleString('en-US');
}

/** Bytes with a binary unit: 1536 -> "1.50 KiB". */
export function human(bytes: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB'];
  let v = bytes;
  let u = 0;
  while (Math.abs(v) >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${v} B` : `${v.toFixed(2)} ${units[u]}`;
}

/** "1,234 (1.21 KiB)" */
export function bytesCell(bytes: number): string {
  return bytes < 1024 ? `${num(bytes)} B` : `${num(bytes)} (${human(bytes)})`;
}

/** Left-aligned columns except those listed in `right`; a rule under the header. */
export function table(header: string[], rows: string[][], right: number[] = []): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (right.includes(i) ? (c ?? '').padStart(widths[i]) : (c ?? '').padEnd(widths[i])))
      .join('  ')
      .trimEnd();
  return [line(header), widths.map((w) => '-'.repeat(w)).join('  '), ...rows.map(line)].join('\n');
}

export function indent(text: string, by = '  '): string {
  return text
    .split('\n')
    .map((l) => (l ? by + l : l))
    .join('\n');
}
