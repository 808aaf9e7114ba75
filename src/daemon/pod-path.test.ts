// What a failed port-forward teaches the pod path, decided by the error's type, never its words.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { NoSpdyTunnel, PortForwardRefused } from '../kube/portforward.ts';
import { failureLesson } from './pod-path.ts';

test('an API server without the SPDY tunnel ends the path; a 403 refuses the namespace; the rest is the pod', () => {
  assert.equal(failureLesson(new NoSpdyTunnel('no SPDY')), 'path');
  assert.equal(failureLesson(new PortForwardRefused('refused: HTTP 403', 403)), 'namespace');
  assert.equal(failureLesson(new PortForwardRefused('refused: HTTP 404', 404)), 'pod');
  assert.equal(failureLesson(new Error('port-forward: failed to connect to localhost:8000')), 'pod');
  // Words alone decide nothing: a stream error quoting an API server's refusal is about the pod.
  assert.equal(failureLesson(new Error('port-forward to shop/web-1:80 refused: HTTP 403')), 'pod');
});
