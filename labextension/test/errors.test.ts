// The panel turns every failed API reply into a message a person can act on.
import { strict as assert } from 'node:assert';
import { test } from 'node:test';

import { errorFromReply } from '../src/errors';

test("the service's own error body is shown as it is", () => {
  const error = errorFromReply(409, JSON.stringify({ error: 'ClusterExists', message: "cluster 'a' already exists" }));
  assert.equal(error.code, 'ClusterExists');
  assert.equal(error.message, "cluster 'a' already exists");
  assert.equal(error.status, 409);
});

test('replies without an error body still say what happened and what to do', () => {
  assert.match(errorFromReply(403, '<html>Forbidden</html>').message, /log in again/);
  assert.match(errorFromReply(404, 'Not Found').message, /not enabled in this Jupyter server/);
  assert.match(errorFromReply(502, '').message, /HTTP 502/);
  assert.doesNotMatch(errorFromReply(500, 'Traceback (most recent call last)').message, /Traceback/);
});
