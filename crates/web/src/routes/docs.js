// The API page: lists the operations of openapi.json (no inline script: the CSP forbids it).
fetch('openapi.json').then(r => r.json()).then(spec => {
  document.getElementById('desc').textContent = spec.info.description;
  const ops = document.getElementById('ops'); ops.textContent = '';
  for (const [path, item] of Object.entries(spec.paths)) {
    for (const [method, op] of Object.entries(item)) {
      // Path-level keys (parameters, summary) are not operations.
      if (!op || typeof op !== 'object' || !op.responses) continue;
      const div = document.createElement('div'); div.className = 'op';
      // Shared error answers are references to components.responses (see web/src/openapi.rs).
      const resolve = r => (r.$ref ? spec.components.responses[r.$ref.split('/').pop()] : r) || {};
      const codes = Object.entries(op.responses).map(([c, r]) => c + ' ' + resolve(r).description).join(' · ');
      div.innerHTML = `<span class="m ${method}">${method}</span> <code></code> — <span class="s"></span>
        <div class="codes"></div>`;
      div.querySelector('code').textContent = path;
      div.querySelector('.s').textContent = op.summary || op.operationId;
      div.querySelector('.codes').textContent = codes;
      if (op.requestBody) {
        const d = document.createElement('details');
        d.innerHTML = '<summary>Request body</summary><pre></pre>';
        const schema = Object.values(op.requestBody.content)[0].schema;
        const ref = schema.$ref ? spec.components.schemas[schema.$ref.split('/').pop()] : schema;
        d.querySelector('pre').textContent = JSON.stringify(ref, null, 2);
        div.appendChild(d);
      }
      ops.appendChild(div);
    }
  }
});
