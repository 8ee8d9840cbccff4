// Opens a .heapsnapshot in the DevTools that ships inside Debian's chromium (served on
// its remote-debugging port), as a user does with Memory → Load profile, selects the
// first Slab of the Summary and saves a screenshot showing its Retainers pane.
//
//   node e2e/devtools/screenshot.js FILE.heapsnapshot OUT.png   (scripts/devtools-screenshot)
const { chromium } = require('playwright-core');
const http = require('http');

const [file, out] = process.argv.slice(2);
if (!file || !out) {
  console.error('usage: screenshot.js FILE.heapsnapshot OUT.png');
  process.exit(2);
}
const port = 9300 + (process.pid % 500);
const json = (path) => new Promise((resolve, reject) => {
  http.get(`http://127.0.0.1:${port}${path}`, (r) => {
    let body = '';
    r.on('data', (c) => (body += c));
    r.on('end', () => resolve(JSON.parse(body)));
  }).on('error', reject);
});

(async () => {
  const browser = await chromium.launch({
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage', '--disable-quic',
      '--no-first-run', '--disable-background-networking', '--disable-component-update',
      '--disable-sync', `--remote-debugging-port=${port}`, '--remote-allow-origins=*'],
  });
  try {
    const context = await browser.newContext({ viewport: { width: 1400, height: 850 } });
    const inspected = await context.newPage();
    await inspected.goto('about:blank');
    const target = (await json('/json/list')).find((t) => t.type === 'page' && t.url === 'about:blank');
    const ws = target.webSocketDebuggerUrl.replace('ws://', '');
    const devtools = await context.newPage();
    await devtools.goto(`http://127.0.0.1:${port}/devtools/devtools_app.html?ws=${ws}`);
    // Memory → Load profile → the file.
    await devtools.getByText('Memory', { exact: true }).first().click();
    await devtools.locator('input[type=file]').first().setInputFiles(file);
    const name = require('path').basename(file).replace(/\.heapsnapshot$/, '');
    // Open the profile once it has loaded (a click while it loads only selects it):
    // select it, and if its Summary does not show, go back to Profiles and again.
    const slab = devtools.locator('td', { hasText: /^Slab/ }).first();
    for (let attempt = 1; ; attempt++) {
      await devtools.getByText(name, { exact: true }).first().click();
      try {
        await slab.waitFor({ timeout: 2000 });
        break;
      } catch (e) {
        if (attempt === 20) {
          await devtools.screenshot({ path: out + '.failed.png' });
          throw new Error(`the Summary did not show a Slab class within 40 s (see ${out}.failed.png)`);
        }
        await devtools.getByText('Profiles', { exact: true }).first().click();
      }
    }
    // Summary: the Slab class, its first instance, and its retainers.
    await slab.click();
    await devtools.keyboard.press('ArrowRight');
    await devtools.locator('td', { hasText: /@\d+/ }).first().waitFor({ timeout: 10000 });
    await devtools.keyboard.press('ArrowDown');
    await devtools.getByText(/of connection \d+/).first().waitFor({ timeout: 10000 });
    await devtools.screenshot({ path: out });
    console.log(`devtools-screenshot: ${out}`);
  } finally {
    await browser.close();
  }
})().catch((e) => {
  console.error(`devtools-screenshot: ${e.message}`);
  process.exit(1);
});
