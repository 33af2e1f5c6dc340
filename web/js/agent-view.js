// The agent view (#agent=<name>[&service=<name>]). A placeholder until the agents table's part
// (helper B1) brings the real view: the agent's name and service, nothing more.

import { el, kvRow } from "./util.js";
import { openPanel } from "./detail.js";

export function renderAgentView(name, service = "") {
  openPanel({
    kind: "agent",
    title: name,
    route: service ? { agent: name, service } : { agent: name },
    build(body) {
      const list = el("dl", "kv-list");
      kvRow(list, "agent", name);
      kvRow(list, "service", service || null);
      body.appendChild(list);
    },
  });
}
