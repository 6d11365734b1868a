//! A TCP port on this host's loopback that leads to one inside a network namespace: how the demo
//! shows the console of a backend that runs in the lab's sensor namespace, with no address or
//! route added outside the lab.

use std::{
    fs::File,
    io,
    net::{Shutdown, SocketAddr, TcpListener, TcpStream},
    os::fd::AsRawFd as _,
    thread,
};

use anyhow::Context as _;

/// Listens on `listen` here; each connection is joined to `target` as seen from inside
/// `namespace` (a name under /run/netns). Runs until the process ends; returns the address it
/// listens on.
pub(crate) fn start(
    listen: SocketAddr,
    namespace: &str,
    target: SocketAddr,
) -> anyhow::Result<SocketAddr> {
    let listener = TcpListener::bind(listen)
        .or_else(|_| TcpListener::bind(SocketAddr::new(listen.ip(), 0)))
        .with_context(|| format!("listening on {}", listen.ip()))?;
    let address = listener.local_addr()?;
    let handle = File::open(format!("/run/netns/{namespace}"))
        .with_context(|| format!("opening the namespace {namespace}"))?;
    thread::Builder::new()
        .name("forward".to_owned())
        .spawn(move || {
            // This thread's own connections are made inside the namespace; the listener, made
            // before, stays on this host's loopback.
            // SAFETY: setns on a valid namespace fd affects only this thread.
            if unsafe { libc::setns(handle.as_raw_fd(), libc::CLONE_NEWNET) } != 0 {
                eprintln!(
                    "forward: entering the namespace: {}",
                    io::Error::last_os_error()
                );
                return;
            }
            for client in listener.incoming().map_while(Result::ok) {
                match TcpStream::connect(target) {
                    Ok(server) => join(client, server),
                    Err(error) => eprintln!("forward: {target}: {error}"),
                }
            }
        })?;
    Ok(address)
}

/// Copies both ways until either side closes.
fn join(client: TcpStream, server: TcpStream) {
    let (Ok(client_read), Ok(server_read)) = (client.try_clone(), server.try_clone()) else {
        return;
    };
    let pipe = |mut from: TcpStream, mut to: TcpStream| {
        move || {
            drop(io::copy(&mut from, &mut to));
            drop(to.shutdown(Shutdown::Write));
        }
    };
    thread::spawn(pipe(client_read, server));
    thread::spawn(pipe(server_read, client));
}
