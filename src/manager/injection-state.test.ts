// Proves that an injection's state is believed only when this install signed it, unchanged.
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { test } from 'node:test';
import { recordedState, stateAnnotations, type InjectionState } from './injection-state.ts';
import { Signer } from './signer.ts';

const state: InjectionState = {
  key: 'a/deployments/web',
  name: 'web',
  kind: 'Deployment',
  mode: 'intercept',
  id: '0b7e0c1e-7f43-4a86-9c2f-8d7b1a2c3d4e',
  agentPorts: [{ listen: 19000, forward: 8000 }],
  intercepts: [
    {
      sessionId: '7a4f6a4e-1b2c-4d3e-8f9a-0b1c2d3e4f5a',
      info: {
        id: '1c2d3e4f-5a6b-4c7d-8e9f-0a1b2c3d4e5f',
        mode: 'intercept',
        namespace: 'a',
        workload: 'web',
        kind: 'Deployment',
        holder: 'dev@laptop',
        ports: [{ local: 8080, remote: 'web:80/http', agentPort: 19000 }],
      },
    },
  ],
};

const on = (annotations: Record<string, string>) => ({ metadata: { annotations } });

test('a signed state is read back as written', () => {
  const signer = new Signer(randomBytes(32));
  assert.deepEqual(recordedState(signer, on(stateAnnotations(signer, state))), state);
});

test('another install, a changed state or a missing signature is not believed', () => {
  const signer = new Signer(randomBytes(32));
  const annotations = stateAnnotations(signer, state);
  assert.equal(recordedState(new Signer(randomBytes(32)), on(annotations)), undefined);
  const [textKey, macKey] = Object.keys(annotations) as [string, string];
  const stolen = JSON.parse(annotations[textKey]!) as InjectionState;
  stolen.intercepts[0]!.sessionId = 'ffffffff-1b2c-4d3e-8f9a-0b1c2d3e4f5a';
  assert.equal(
    recordedState(signer, on({ [textKey]: JSON.stringify(stolen), [macKey]: annotations[macKey]! })),
    undefined,
  );
  assert.equal(recordedState(signer, on({ [textKey]: annotations[textKey]! })), undefined);
  const malformed = JSON.stringify({ ...state, id: 'not-a-uuid' });
  assert.equal(
    recordedState(signer, on({ [textKey]: malformed, [macKey]: signer.sign(malformed) })),
    undefined,
  );
});
