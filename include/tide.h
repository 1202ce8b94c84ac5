/*
 * tide.h: everything. tide brings Tokio's model of asynchronous I/O
 * (futures, tasks, wakers, AsyncFd, AsyncRead/AsyncWrite) to C programs
 * and to the libevent loops they already run.
 *
 * One header per layer, each usable alone:
 *   tide/error.h   error codes, tide_strerror, the version
 *   tide/core.h    futures, wakers, tasks, the executor, combinators
 *   tide/sync.h    oneshot, mpsc channel, notify, semaphore
 *   tide/fd.h      the reactor: readiness of a descriptor (AsyncFd)
 *   tide/time.h    sleep, interval, timeout
 *   tide/signal.h  signals as futures
 *   tide/task.h    cancellation tokens, scopes, the blocking pool
 *   tide/io.h      byte streams and the helpers that work on any stream
 *   tide/net.h     addresses, TCP, UDP, Unix sockets, pipes, name lookups
 *   tide/fs.h      files, on the blocking pool
 *   tide/libevent.h  bufferevents, evconnlisteners and callbacks as tide
 *                  streams, listeners and tasks
 *   tide/tls.h     TLS over any stream, with OpenSSL 3 (only when tide was
 *                  built with it: TIDE_HAVE_TLS, tide/version.h)
 */
#ifndef TIDE_H
#define TIDE_H

#include "tide/error.h"
#include "tide/core.h"
#include "tide/sync.h"
#include "tide/fd.h"
#include "tide/time.h"
#include "tide/signal.h"
#include "tide/task.h"
#include "tide/io.h"
#include "tide/net.h"
#include "tide/fs.h"
#include "tide/libevent.h"
#if TIDE_HAVE_TLS
#include "tide/tls.h"
#endif

#endif
