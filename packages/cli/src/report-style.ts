/** Style sheet of the HTML report, inlined so the file opens from disk with nothing else. */
export const REPORT_STYLE = `
:root { color-scheme: light; --muted: #666; --line: #ddd; }
body { margin: 0; font: 15px/1.5 "DejaVu Sans", Helvetica, Arial, sans-serif; color: #222; background: #fafafa; }
main { max-width: 1180px; margin: 0 auto; padding: 24px 32px 64px; background: #fff; }
h1 { font-size: 26px; margin: 0 0 8px; }
h2 { font-size: 20px; margin: 36px 0 12px; padding-bottom: 4px; border-bottom: 1px solid var(--line); }
h3 { font-size: 15px; margin: 18px 0 8px; }
h4 { font-size: 14px; margin: 14px 0 6px; }
nav { color: var(--muted); font-size: 14px; }
nav a { color: #1f5fa8; text-decoration: none; }
code, pre { font-family: "DejaVu Sans Mono", Menlo, Consolas, monospace; font-size: 13px; }
pre { background: #f4f4f4; padding: 12px; overflow-x: auto; max-height: 480px; }
table { border-collapse: collapse; margin: 8px 0; font-size: 14px; }
th, td { padding: 4px 10px; border-bottom: 1px solid var(--line); text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid #bbb; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
table.values th { font-weight: 600; background: #f7f7f7; }
.columns { display: flex; flex-wrap: wrap; gap: 40px; align-items: flex-start; }
dl.facts { display: grid; grid-template-columns: max-content 1fr; gap: 4px 16px; margin: 0; }
dl.facts dt { color: var(--muted); }
dl.facts dd { margin: 0; overflow-wrap: anywhere; }
figure { margin: 16px 0 28px; }
figure svg { max-width: 100%; height: auto; }
figure.image img { display: block; max-width: 100%; image-rendering: pixelated; border: 1px solid var(--line); }
figcaption { color: var(--muted); font-size: 13px; margin-top: 6px; }
.muted { color: var(--muted); }
.scroll { max-width: 100%; overflow-x: auto; }
`;
