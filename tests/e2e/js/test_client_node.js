// test_client_node.js — @kubernetes/client-node 1.4.0 against a running kubec server.
//
// Reads the kubeconfig from $KUBECONFIG (run_node_test.py starts the server and sets it). Exercises typed
// AppsV1Api/CoreV1Api calls, a Watch on deployments (ADDED then MODIFIED) and a merge patch chosen with
// setHeaderOptions. Any failed assertion or a step that exceeds its time limit exits the process non-zero.
'use strict';
const assert = require('node:assert/strict');

const STEP_MS = 15000; // upper bound for any single wait
const TOTAL_MS = 90000; // whole run

const overall = setTimeout(() => {
  console.error('FAIL: test run exceeded ' + TOTAL_MS + ' ms');
  process.exit(2);
}, TOTAL_MS);

function withTimeout(promise, what, ms = STEP_MS) {
  let timer;
  const t = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error('timed out after ' + ms + ' ms: ' + what)), ms);
  });
  return Promise.race([promise, t]).finally(() => clearTimeout(timer));
}

function deployment(name, replicas) {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name, labels: { app: name } },
    spec: {
      replicas,
      selector: { matchLabels: { app: name } },
      template: {
        metadata: { labels: { app: name } },
        spec: { containers: [{ name: 'web', image: 'nginx:1.25' }] },
      },
    },
  };
}

async function expectApiError(promise, code, what) {
  let err = null;
  try {
    await withTimeout(promise, what);
  } catch (e) {
    err = e;
  }
  assert.ok(err, what + ': expected an error, got success');
  assert.equal(err.code, code, what + ': ' + String(err.body || err.message));
  return err;
}

async function main() {
  assert.ok(process.env.KUBECONFIG, 'KUBECONFIG must be set');
  const k8s = await import('@kubernetes/client-node');
  const kc = new k8s.KubeConfig();
  kc.loadFromFile(process.env.KUBECONFIG);
  const apps = kc.makeApiClient(k8s.AppsV1Api);
  const core = kc.makeApiClient(k8s.CoreV1Api);
  const ns = 'js-client';

  const nsObj = await withTimeout(core.createNamespace({ body: { metadata: { name: ns } } }), 'create namespace');
  assert.equal(nsObj.metadata.name, ns);

  const nsList = await withTimeout(core.listNamespace(), 'list namespaces');
  const nsNames = nsList.items.map((n) => n.metadata.name);
  assert.ok(nsNames.includes('default'), 'default namespace listed: ' + nsNames);
  assert.ok(nsNames.includes(ns), 'new namespace listed: ' + nsNames);
  assert.ok(nsList.metadata.resourceVersion, 'NamespaceList has metadata.resourceVersion');

  // create + list
  const created = await withTimeout(
    apps.createNamespacedDeployment({ namespace: ns, body: deployment('web', 2) }), 'create deployment');
  assert.equal(created.kind, 'Deployment');
  assert.equal(created.apiVersion, 'apps/v1');
  assert.equal(created.metadata.name, 'web');
  assert.equal(created.metadata.namespace, ns);
  assert.ok(created.metadata.uid, 'uid set');
  assert.ok(created.metadata.resourceVersion, 'resourceVersion set');
  assert.ok(created.metadata.creationTimestamp instanceof Date, 'creationTimestamp parsed as a date');
  assert.equal(created.spec.replicas, 2);

  const list = await withTimeout(apps.listNamespacedDeployment({ namespace: ns }), 'list deployments');
  assert.deepEqual(list.items.map((d) => d.metadata.name), ['web']);
  assert.equal(list.items[0].metadata.uid, created.metadata.uid);
  const sel = await withTimeout(
    apps.listNamespacedDeployment({ namespace: ns, labelSelector: 'app!=web' }), 'list with selector');
  assert.deepEqual(sel.items, []);

  await expectApiError(apps.createNamespacedDeployment({ namespace: ns, body: deployment('web', 1) }), 409,
    'create duplicate');
  await expectApiError(apps.readNamespacedDeployment({ namespace: ns, name: 'missing' }), 404, 'read missing');

  // watch: ADDED for the existing deployment, then MODIFIED after a merge patch from this process
  const events = [];
  let patchStarted = false;
  let resolveWatch;
  let rejectWatch;
  const watchDone = new Promise((res, rej) => { resolveWatch = res; rejectWatch = rej; });
  const watcher = new k8s.Watch(kc);
  const patchBody = { spec: { replicas: 3 }, metadata: { labels: { patched: 'yes' } } };
  const mergeOpts = k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch);
  const ctrl = await withTimeout(watcher.watch(`/apis/apps/v1/namespaces/${ns}/deployments`, {},
    (phase, obj) => {
      events.push([phase, obj.metadata.name, obj.spec && obj.spec.replicas]);
      if (phase === 'ADDED' && !patchStarted) {
        patchStarted = true;
        apps.patchNamespacedDeployment({ namespace: ns, name: 'web', body: patchBody }, mergeOpts)
          .catch(rejectWatch);
      }
      if (phase === 'MODIFIED' && obj.spec && obj.spec.replicas === 3) resolveWatch();
    },
    (err) => { if (err) rejectWatch(err); }), 'start watch');
  try {
    await withTimeout(watchDone, 'watch ADDED then MODIFIED (events so far ' + JSON.stringify(events) + ')');
  } finally {
    ctrl.abort();
  }
  assert.equal(events[0][0], 'ADDED', JSON.stringify(events));
  assert.equal(events[0][1], 'web');
  const mod = events.findIndex((e) => e[0] === 'MODIFIED' && e[2] === 3);
  assert.ok(mod > 0, 'MODIFIED after ADDED: ' + JSON.stringify(events));

  // the merge patch took effect and merged (labels kept, new label added)
  const after = await withTimeout(apps.readNamespacedDeployment({ namespace: ns, name: 'web' }), 'read');
  assert.equal(after.spec.replicas, 3);
  assert.deepEqual(after.metadata.labels, { app: 'web', patched: 'yes' });
  assert.equal(after.spec.template.spec.containers[0].image, 'nginx:1.25');

  // a strategic merge patch through the same mechanism
  const smp = await withTimeout(apps.patchNamespacedDeployment({
    namespace: ns, name: 'web',
    body: { spec: { template: { spec: { containers: [{ name: 'web', image: 'nginx:1.27' }] } } } },
  }, k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.StrategicMergePatch)), 'strategic merge patch');
  assert.equal(smp.spec.template.spec.containers.length, 1);
  assert.equal(smp.spec.template.spec.containers[0].image, 'nginx:1.27');

  // without setHeaderOptions client-node sends application/json-patch+json; an object is not a JSON patch
  const before = await apps.readNamespacedDeployment({ namespace: ns, name: 'web' });
  const bad = await expectApiError(
    apps.patchNamespacedDeployment({ namespace: ns, name: 'web', body: { spec: { replicas: 7 } } }), 400,
    'object body sent as json-patch');
  assert.match(String(bad.body), /"kind":\s*"Status"/);
  const unchanged = await apps.readNamespacedDeployment({ namespace: ns, name: 'web' });
  // controllers may write status meanwhile; the rejected patch must not have changed the spec
  assert.equal(unchanged.metadata.generation, before.metadata.generation);
  assert.deepEqual(unchanged.spec, before.spec);
  assert.equal(unchanged.spec.replicas, 3);

  // informer: lists, then watches from the list's resourceVersion; sees add, update, delete and keeps a cache
  const seen = [];
  const waiters = [];
  const note = (verb) => (obj) => {
    seen.push([verb, obj.metadata.name]);
    waiters.splice(0).forEach((w) => w());
  };
  const until = (pred, what) => withTimeout(new Promise((res) => {
    const check = () => (pred() ? res() : waiters.push(check));
    check();
  }), what + ' (informer events ' + JSON.stringify(seen) + ')');
  const informer = k8s.makeInformer(kc, `/api/v1/namespaces/${ns}/configmaps`,
    () => core.listNamespacedConfigMap({ namespace: ns }));
  informer.on('add', note('add'));
  informer.on('update', note('update'));
  informer.on('delete', note('delete'));
  let informerError = null;
  informer.on('error', (err) => { informerError = err; });
  await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'before' }, data: { a: '1' } } });
  await withTimeout(informer.start(), 'informer start');
  try {
    await until(() => seen.some((e) => e[0] === 'add' && e[1] === 'before'), 'informer lists existing object');
    await core.createNamespacedConfigMap({ namespace: ns, body: { metadata: { name: 'later' }, data: { a: '1' } } });
    await until(() => seen.some((e) => e[0] === 'add' && e[1] === 'later'), 'informer add');
    await core.patchNamespacedConfigMap({ namespace: ns, name: 'later', body: { data: { a: '2' } } },
      k8s.setHeaderOptions('Content-Type', k8s.PatchStrategy.MergePatch));
    await until(() => seen.some((e) => e[0] === 'update' && e[1] === 'later'), 'informer update');
    assert.equal(informer.get('later', ns).data.a, '2');
    await core.deleteNamespacedConfigMap({ namespace: ns, name: 'later' });
    await until(() => seen.some((e) => e[0] === 'delete' && e[1] === 'later'), 'informer delete');
    assert.equal(informer.get('later', ns), undefined);
    assert.deepEqual(informer.list(ns).map((o) => o.metadata.name), ['before']);
    assert.equal(informerError, null, 'informer error: ' + informerError);
  } finally {
    await informer.stop();
  }

  // delete accepts the empty body client-node sends with a JSON Content-Type
  await withTimeout(apps.deleteNamespacedDeployment({ namespace: ns, name: 'web' }), 'delete');
  // the object is gone (or terminating if a finalizer holds it)
  try {
    const d = await apps.readNamespacedDeployment({ namespace: ns, name: 'web' });
    assert.ok(d.metadata.deletionTimestamp, 'deleted deployment still readable without deletionTimestamp');
  } catch (e) {
    assert.equal(e.code, 404, String(e.body || e.message));
  }
  console.log('PASS: client-node watch ' + JSON.stringify(events) + ' informer ' + JSON.stringify(seen));
}

main().then(() => {
  clearTimeout(overall);
  process.exit(0);
}, (err) => {
  console.error('FAIL:', err && err.stack ? err.stack : err);
  if (err && err.body) console.error('body:', err.body);
  process.exit(1);
});
