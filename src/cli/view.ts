/**
 * `dmabuf-lab view`: serves the visualiser's page (one self-contained HTML file) on
 * 127.0.0.1, on the port asked for or a free one, until the process is stopped.
 */
import { spawn } from 'node:child_process';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';

/** A running visualiser server. */
export interface ViewServer {
  /** Its address, `http://127.0.0.1:<port>/`. */
  url: string;
  /** The server (close it to stop). */
  server: Server;
  /** Opens the page in the default browser (xdg-open, open or start). */
  open(): void;
}

/** Serves `html` at `/` (and `/index.html`) on 127.0.0.1:`port` (0: a free port). */
export function serveView(html: string, port = 0): Promise<ViewServer> {
  const body = Buffer.from(html, 'utf8');
  const server = createServer((req, res) => {
    const path = (req.url ?? '/').split(/[?#]/)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      res.writeHead(405, { allow: 'GET, HEAD' }).end();
    } else if (path === '/' || path === '/index.html') {
      res.writeHead(200, {
        'content-type': 'text/html; charset=utf-8',
        'content-length': body.length,
        'cache-control': 'no-store',
      });
      res.end(req.method === 'HEAD' ? undefined : body);
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' }).end('not found: the visualiser is at /\n');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      const { port: p } = server.address() as AddressInfo;
      const url = `http://127.0.0.1:${p}/`;
      resolve({
        url,
        server,
        open() {
          const cmd =
            process.platform === 'darwin' ? 'open' : process.platform === 'win32' ? 'explorer' : 'xdg-open';
          spawn(cmd, [url], { stdio: 'ignore', detached: true })
            .on('error', () => process.stderr.write(`could not start ${cmd}; open ${url} yourself\n`))
            .unref();
        },
      });
    });
  });
}
