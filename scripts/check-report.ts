/**
 * Opens a run's report.html in headless Chromium and checks that it renders on its own.
 *
 *   pnpm check-report [runs/demo/report.html] [--chromium /usr/bin/chromium]
 *
 * It fails (exit 1) when an <img> did not load (naturalWidth 0), a plot's SVG is missing or
 * empty, the page logged a console error or threw, or the page requested anything but file: and
 * data: URLs (those requests are blocked, so a report that needs the network fails here). It
 * saves a full-page screenshot as report.png beside the report. It needs a Chromium binary,
 * e.g. Debian's `apt-get install chromium`; playwright-core drives it and downloads no browser.
 */
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';

/** Plots every run report has; fine-tuning and GAN plots appear only when the run had them. */
const REQUIRED_PLOTS = ['scores', 'loss', 'validation', 'confusion'];
const CHROMIUM_CANDIDATES = ['/usr/bin/chromium', '/usr/bin/chromium-browser', '/usr/bin/google-chrome'];

function parseArguments(argv: string[]): { report: string; chromiumPath: string } {
  let report = 'runs/demo/report.html';
  let chromiumPath = process.env.CHROMIUM_PATH ?? CHROMIUM_CANDIDATES.find((path) => existsSync(path));
  for (let i = 0; i < argv.length; i++) {
    if (argv[i] === '--chromium') chromiumPath = argv[++i];
    else report = argv[i];
  }
  if (chromiumPath === undefined || !existsSync(chromiumPath)) {
    throw new Error(`No Chromium found (tried ${CHROMIUM_CANDIDATES.join(', ')}). Install one (apt-get install chromium) or pass --chromium PATH.`);
  }
  if (!existsSync(report)) throw new Error(`${report} not found. Give the path of a run's report.html, e.g. runs/demo/report.html.`);
  return { report: resolve(report), chromiumPath };
}

async function main(): Promise<number> {
  const { report, chromiumPath } = parseArguments(process.argv.slice(2));
  const problems: string[] = [];
  const browser = await chromium.launch({ executablePath: chromiumPath, args: ['--no-sandbox'] });
  try {
    const page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('console', (message) => {
      if (message.type() === 'error') problems.push(`console error: ${message.text()}`);
    });
    page.on('pageerror', (error) => problems.push(`page error: ${error.message}`));
    page.on('requestfailed', (request) => {
      if (!request.url().startsWith('data:')) problems.push(`failed request: ${request.url()} (${request.failure()?.errorText ?? 'unknown'})`);
    });
    await page.route('**/*', (route) => {
      const url = route.request().url();
      if (url.startsWith('file:') || url.startsWith('data:')) return route.continue();
      problems.push(`network request: ${url}`);
      return route.abort();
    });

    await page.goto(pathToFileURL(report).href, { waitUntil: 'load' });
    const images = await page.$$eval('img', (elements) =>
      elements.map((image) => ({ alt: image.alt, loaded: image.complete && image.naturalWidth > 0, width: image.naturalWidth, data: image.src.startsWith('data:') })),
    );
    for (const image of images) {
      if (!image.loaded) problems.push(`image '${image.alt}' did not load`);
      if (!image.data) problems.push(`image '${image.alt}' is not a data: URI`);
    }
    const plots = await page.$$eval('figure.plot', (figures) =>
      figures.map((figure) => {
        const svg = figure.querySelector('svg');
        const box = svg?.getBoundingClientRect();
        return { id: figure.getAttribute('data-plot') ?? '?', marks: svg?.querySelectorAll('path, rect, line, text').length ?? 0, width: box?.width ?? 0, height: box?.height ?? 0 };
      }),
    );
    for (const plot of plots) {
      if (plot.marks === 0 || plot.width === 0 || plot.height === 0) problems.push(`plot '${plot.id}' has an empty or missing SVG (${plot.marks} marks, ${plot.width}x${plot.height})`);
    }
    for (const id of REQUIRED_PLOTS) {
      if (!plots.some((plot) => plot.id === id)) problems.push(`plot '${id}' is missing`);
    }

    const screenshot = join(dirname(report), 'report.png');
    await page.screenshot({ path: screenshot, fullPage: true });
    process.stdout.write(`${report}: ${images.length} images, ${plots.length} plots (${plots.map((plot) => plot.id).join(', ')})\nscreenshot: ${screenshot}\n`);
  } finally {
    await browser.close();
  }

  if (problems.length > 0) {
    process.stderr.write(`report check failed:\n${problems.map((problem) => `  ${problem}`).join('\n')}\n`);
    return 1;
  }
  process.stdout.write('report check passed\n');
  return 0;
}

process.exitCode = await main().catch((error: Error) => {
  process.stderr.write(`check-report: ${error.message}\n`);
  return 2;
});
