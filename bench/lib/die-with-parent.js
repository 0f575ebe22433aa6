// Preloaded (node --import) into every bench child, including the stock
// y-websocket server: when the orchestrator goes away, its IPC channel
// closes, and the child exits instead of lingering.
if (process.connected) process.on('disconnect', () => process.exit(0));
