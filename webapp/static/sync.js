// The Arena's synchronised-scroll checkbox: a browser-only event, no server call.
(on) => { if (window.lwzReading) window.lwzReading.setSync(on); }
