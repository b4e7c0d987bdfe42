// Every string blindpad's page shows, in one place, ready for translation.
//
// index.html holds no words of its own: each element that shows one names its
// entry (data-s="key" for the text, data-s-title, data-s-placeholder,
// data-s-aria-label for those attributes) and app.js fills them in from this
// object before anything is shown; app.js takes every other line from here
// through t(key, values), which replaces "{name}" with values.name.
//
// A translation is a copy of this object with the same keys (and `lang` set
// to its language tag); nothing else in the page changes.
//
// Lines the Python client writes that reach the page (shown under the pad as
// they are; not yet keyed here, each ends with the relay's code in brackets
// where there is one, so a page could map it):
//   client/browser.py  _FAILURES        a refused pad, by the relay's code
//                      TOKEN_REFUSED    a refused creation token
//                      edit_refused     an edit that could not be made
//                      start            a damaged or incomplete link
//                      _Storage         local storage unreadable or full
//   client/browser.py  _state           "Alarm (kind): detail" for an alarm
//                                        (the banner's words are below)
// Not here on purpose: the embed API's errors (app.js COMMANDS), which go to
// the host page's code, not to a person; and technical details quoted inside
// a line ({detail}: a browser's or Python's own error text).
globalThis.BLINDPAD_STRINGS = {
  lang: "en",
  title: "blindpad",

  // The bar.
  brandTitle: "blindpad: the relay cannot read this pad",
  viewOnly: "View only",
  jsonReadOnly: "JSON pad: read-only here",
  people: "People here",
  you: "(you)",
  personYou: "{name} (you)",
  personAway: "{name} (not heard from lately)",
  copyEdit: "Copy edit link",
  copyView: "Copy view link",
  copied: "Copied!",
  copyPrompt: "Copy this link:",
  download: "Download",
  downloadTxt: "Plain text (.txt)",
  downloadMd: "Markdown (.md)",
  downloadName: "blindpad",
  settings: "You",
  settingsTitle: "Your name and colour",
  profileName: "Your name",
  profileColor: "Your colour",
  profileSave: "Save",
  profileDefault: "Use the default",
  profileHint: "Others see this name and colour. It is kept in this browser only.",

  // History (what the relay keeps).
  history: "History",
  historyTitle: "History",
  historyClose: "Close",
  historyNote: "What the relay keeps of this pad: pick a version to see it; restoring it is a new change, by you.",
  historyList: "Versions, newest first",
  historyText: "The text of this version (read only)",
  historyRestore: "Restore this version",
  historyCompare: "Compare with now",
  historyDiff: "What changed since this version: removed text struck through, added text underlined",
  historyNoChange: "The text now is the same as this version.",
  historyChanged: "Since this version: {added} characters added, {removed} removed.",
  historyFolded: "⋯ {count} characters unchanged ⋯",
  historyLoading: "Reading the history…",
  historyEmpty: "Nothing kept yet.",
  historyEntry: "#{seq} · {time} · {author}",
  historySnapshot: "#{seq} · {time} · {author} (checkpoint)",
  historyCheckpoint: "#{seq} · {time} · {author} (older checkpoint: the history around it is gone)",
  historyUnreadable: "#{seq} · a change that does not open",
  historyUnknownTime: "time unknown",
  historyUnknownAuthor: "someone",
  historyShowing: "Version #{seq}, {time}, by {author}.",
  historyRestored: "Version #{seq} restored.",
  historyFailed: "The history cannot be read ({detail}). Try again in a moment.",

  // The status line.
  loadingShort: "Loading…",
  landingStatus: "Encrypted in your browser",
  connecting: "Connecting…",
  offlineRetrying: "Offline — reconnecting…",
  syncing: "Syncing…",
  saved: "Saved",
  offline: "Offline",
  unreachable: "Cannot reach the relay",
  outOfDate: "This page is out of date: reload it",
  retrying: "{lead} — reconnecting…",
  retryingIn: "{lead} — reconnecting in {seconds} s",
  error: "Error",
  tokenNeeded: "Creation token needed",

  // The landing page.
  landingTitle: "Write together. The server can’t read a word.",
  landingBefore: "blindpad is an end-to-end encrypted pad. The secret key is made in your browser and lives only in the link’s ",
  landingAfter: ", which browsers never send to the server. The relay stores and forwards ciphertext it cannot open.",
  newPad: "Create a new pad",
  landingFine: "Anyone with the edit link can write; the view link can only read.",

  // The creation token card.
  tokenTitle: "This relay needs a creation token",
  tokenText: "Its operator lets only holders of a token create pads here. Opening a pad someone shared with you needs none. The token is kept in this tab until you close it.",
  tokenLabel: "Creation token",
  tokenSubmit: "Create the pad",

  // The editor.
  padHeading: "Pad",
  padLabel: "Pad text",
  placeholder: "Start typing…",
  loadingPython: "Starting Python…",
  loadingClient: "Loading blindpad…",
  opening: "Opening the pad…",
  connectingRelay: "Connecting to the relay…",
  percent: "{text} {percent}%",

  // Failures (one line: what happened, what to do).
  noFragment: "This link has no secret part after '#': ask for the whole link, or create a new pad.",
  cannotReach: "Cannot reach the relay ({detail}). Check your connection, then reload the page.",
  internal: "Something went wrong in the page ({detail}). Reload it; details are in the browser console.",
  unknownError: "unknown error",

  // The alarm banner (the relay was caught lying).
  alarmRollback: "This relay is serving an older version of this pad than this browser saw.",
  alarmFork: "This relay is showing you a different version of this pad than it showed before (or than it shows others).",
  alarmWithheld: "This relay is holding back changes it has.",
  alarmAdvice: "Your text stays here. Keep working if you like, copy your text somewhere safe, and try another relay.",
};
