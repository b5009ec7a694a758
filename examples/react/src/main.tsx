// The example's entry: one client for the page, shared by the hooks through
// RealtimeProvider, rendered under StrictMode (whose double mount must leave
// one subscription per hook). Where to connect comes from the query string:
// ?server=ws://localhost:8080/ws&token=<JWT>&room=chat:lobby
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { connect } from "@realtime/client";
import { RealtimeProvider } from "@realtime/react";
import { App } from "./App.tsx";

const params = new URLSearchParams(location.search);
const server = params.get("server") ?? "ws://localhost:8080/ws";
const room = params.get("room") ?? "chat:lobby";
const token = params.get("token") ?? "";

const client = connect(server, { token, reconnect: { initialDelayMs: 200, maxDelayMs: 2000 } });

createRoot(document.getElementById("root")!).render(
  <StrictMode>
    <RealtimeProvider client={client}>
      <App room={room} />
    </RealtimeProvider>
  </StrictMode>,
);
