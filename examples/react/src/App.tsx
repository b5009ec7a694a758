// A chat on one room with the hooks: the connection state, the messages (with
// the room's past), who is online, and a second component on the same room
// (its own subscription). "Hide" unmounts them all: the client then leaves.
import { type FormEvent, type ReactNode, useState } from "react";
import { useConnectionState, usePresence, useRealtime, useRoom } from "@realtime/react";

type Chat = { text: string };

function Status() {
  const state = useConnectionState();
  const client = useRealtime();
  return (
    <p>
      <span className="state" id="state" data-state={state}>{state}</span>{" "}
      {client.userId === undefined ? "" : (
        <>
          as <b id="me">{client.userId}</b>
        </>
      )}
    </p>
  );
}

function Messages({ room }: { room: string }) {
  const { messages, publish, position, joined, error } = useRoom<Chat>(room, { since: 0 });
  const [text, setText] = useState("");
  const send = (event: FormEvent) => {
    event.preventDefault();
    if (text.trim() === "") return;
    void publish({ text }).then(() => setText(""));
  };
  return (
    <section>
      <h2>
        #{room} {joined ? "" : "(joining…)"}
        <small id="position">{position === undefined ? "" : ` @${position.offset}`}</small>
      </h2>
      {error === undefined ? null : <p id="error">{error.message}</p>}
      <ol id="messages">
        {messages.map((m) => (
          <li key={`${m.epoch}:${m.offset}:${m.ts}`}>
            <b>{m.from}</b>: {m.payload.text}
          </li>
        ))}
      </ol>
      <form onSubmit={send}>
        <input
          id="text"
          value={text}
          onChange={(e) => setText(e.target.value)}
          placeholder="Say something"
        />
        <button type="submit">Send</button>
      </form>
    </section>
  );
}

function Counter({ room }: { room: string }) {
  const { messages } = useRoom<Chat>(room);
  return (
    <p>
      Seen while mounted: <span id="count">{messages.length}</span>
    </p>
  );
}

function Online({ room }: { room: string }) {
  const { members, count } = usePresence(room);
  return (
    <aside>
      <h2>
        Online (<span id="online-count">{count}</span>)
      </h2>
      <ul id="online">
        {members.map((m) => <li key={m.userId}>{m.userId}</li>)}
      </ul>
    </aside>
  );
}

export function App({ room }: { room: string }): ReactNode {
  const [shown, setShown] = useState(true);
  return (
    <>
      <h1>Realtime + React</h1>
      <Status />
      <button id="toggle" type="button" onClick={() => setShown(!shown)}>
        {shown ? "Hide" : "Show"}
      </button>
      {shown
        ? (
          <main>
            <div>
              <Messages room={room} />
              <Counter room={room} />
            </div>
            <Online room={room} />
          </main>
        )
        : null}
    </>
  );
}
