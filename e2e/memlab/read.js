// Reads one .heapsnapshot with memlab (@memlab/core), a reader independent of
// Chrome DevTools, and prints what it finds as one JSON line: node and edge
// counts, the sum of self sizes, and per Slab node its retained size, dominator
// and memlab's shortest retainer path from the root.
//
// NODE_PATH=target/memlab/node_modules node e2e/memlab/read.js FILE
'use strict';
const {utils, analysis} = require('@memlab/core');

function path(item) {
  const steps = [];
  for (; item; item = item.next) {
    steps.push({
      edge: item.edge ? String(item.edge.name_or_index) : null,
      name: item.node ? item.node.name : null,
      id: item.node ? item.node.id : null,
    });
  }
  return steps;
}

(async () => {
  const snapshot = await utils.getSnapshotFromFile(process.argv[2], {buildNodeIdIndex: true});
  const finder = analysis.preparePathFinder(snapshot);
  let nodes = 0;
  let total = 0;
  const slabs = [];
  snapshot.nodes.forEach(node => {
    nodes += 1;
    total += node.self_size;
    if (node.name === 'Slab' && node.type === 'native') slabs.push(node);
  });
  const out = {
    nodes,
    edges: snapshot.edges.length,
    total_self_size: total,
    slabs: slabs.map(node => ({
      id: node.id,
      self_size: node.self_size,
      retained_size: node.retainedSize,
      dominator: node.dominatorNode ? {name: node.dominatorNode.name, id: node.dominatorNode.id} : null,
      path: path(finder.getPathToGCRoots(snapshot, node)),
    })),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
})().catch(e => {
  process.stderr.write(`memlab could not read ${process.argv[2]}: ${e && e.stack || e}\n`);
  process.exit(1);
});
