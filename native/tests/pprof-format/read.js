// Reads a gzip-compressed pprof profile with pprof-format (Datadog's pure JavaScript
// decoder of profile.proto), a second reader beside go tool pprof, for
// native/tests/pprof.rs. Prints one JSON object: the sample types, the default one,
// the totals of each, and every sample's stack (root first), values and labels.
// Usage: NODE_PATH=<dir>/node_modules node read.js FILE
'use strict';
const fs = require('fs');
const zlib = require('zlib');
const { Profile } = require('pprof-format');

const file = process.argv[2];
const profile = Profile.decode(zlib.gunzipSync(fs.readFileSync(file)));
const strings = profile.stringTable.strings;
const str = (i) => strings[Number(i)];
const functions = new Map(profile.function.map((f) => [Number(f.id), f]));
const locations = new Map(profile.location.map((l) => [Number(l.id), l]));
const frame = (id) => {
  const location = locations.get(Number(id));
  if (!location) throw new Error(`sample names location ${id}, which the profile lacks`);
  return location.line.map((line) => str(functions.get(Number(line.functionId)).name)).join(';');
};
const types = profile.sampleType.map((t) => `${str(t.type)}/${str(t.unit)}`);
const totals = types.map(() => 0);
const samples = profile.sample.map((s) => {
  const values = s.value.map(Number);
  values.forEach((v, i) => { totals[i] += v; });
  const labels = {};
  for (const l of s.label) labels[str(l.key)] = Number(l.str) ? str(l.str) : Number(l.num);
  return { frames: s.locationId.map(frame).reverse(), values, labels };
});
console.log(JSON.stringify({
  sample_types: types,
  default_sample_type: str(profile.defaultSampleType),
  totals,
  samples,
}));
