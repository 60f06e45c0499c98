// Runs in the browser before an Arena vote is sent (webapp/arena_tab.py). Gradio passes the
// event's inputs followed by its outputs; the first __N__ are the inputs, the last of them the
// page's reading report, filled in here (the server parses and clamps it).
(...values) => {
  const inputs = values.slice(0, __N__);
  inputs[__N__ - 1] = window.lwzReading ? window.lwzReading.report() : "";
  return inputs;
}
