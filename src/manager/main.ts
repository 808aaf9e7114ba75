// Entry point of the traffic manager (runs in the cluster from the ConfigMap bundle).
import { MANAGER_PORT } from '../protocol/paths.ts';
import { createManagerServer } from './server.ts';

const port = Number(process.env.TELEPOD_MANAGER_PORT ?? MANAGER_PORT);
const server = createManagerServer();
server.listen(port, () => process.stdout.write(`telepod traffic manager listening on :${port}\n`));
for (const signal of ['SIGTERM', 'SIGINT'] as const) {
  process.once(signal, () => server.close(() => process.exit(0)));
}
