// <blindpad-pad>: a blindpad pad inside any web page (docs/EMBED.md; protocol v1).
//
//   <script src="https://RELAY/embed/v1/blindpad-pad.js"></script>
//   <blindpad-pad link="https://RELAY/p/#..." name="Ada" theme="dark"></blindpad-pad>
//
// The element makes an iframe of the relay's /embed/ page; the pad's secret
// goes into the iframe's URL fragment only (never a query: no request carries
// it). The client, its identity and its stored state live in that frame, on
// the relay's origin: this script only forwards commands and events with
// postMessage, to the relay's origin only, and accepts messages only from its
// own iframe's window on that origin. It loads nothing else.
(() => {
  "use strict";
  const PATH = "/embed/v1/blindpad-pad.js";
  const here = new URL(document.currentScript.src);
  const RELAY = here.href.slice(0, here.href.lastIndexOf(PATH)); // the relay's base URL
  const ORIGIN = here.origin;
  if (customElements.get("blindpad-pad")) return;

  const STYLE = ":host{display:block;height:24em}iframe{display:block;border:0;width:100%;height:100%}";

  class BlindpadPad extends HTMLElement {
    static observedAttributes = ["link", "name", "readonly", "theme", "toolbar"];
    #root = this.attachShadow({ mode: "closed" });
    #frame = null;
    #calls = new Map();
    #next = 1;
    #ready = null;
    #settle = null;
    #listener = (e) => this.#receive(e);

    /** Resolves (with {writer}) once the pad is open in the frame; rejects when it cannot open. */
    get ready() {
      if (!this.#ready) this.#fresh();
      return this.#ready;
    }

    getText() { return this.#call("getText"); }
    insert(pos, text) { return this.#call("insert", pos, text); }
    delete(pos, count) { return this.#call("delete", pos, count); }
    replace(text) { return this.#call("replace", text); }
    setName(name) { return this.#call("setName", name); }
    focus() { return this.#call("focus"); }
    // JSON pads (docs/EMBED.md): a path is an array of string keys and integer indices.
    getValue() { return this.#call("getValue"); }
    set(path, value) { return this.#call("set", path, value); }
    deleteAt(path) { return this.#call("deleteAt", path); }
    insertItem(listPath, index, value) { return this.#call("insertItem", listPath, index, value); }
    moveItem(listPath, from, to) { return this.#call("moveItem", listPath, from, to); }
    add(path, number) { return this.#call("add", path, number); }
    editText(path, pos, del = 0, text = "") { return this.#call("editText", path, pos, del, text); }

    connectedCallback() {
      window.addEventListener("message", this.#listener);
      this.#build();
    }

    disconnectedCallback() {
      window.removeEventListener("message", this.#listener);
      this.#drop("the element was removed from the page");
    }

    attributeChangedCallback(name, old, value) {
      if (!this.isConnected || old === value) return;
      if (name === "name") this.setName(value || "").catch(() => {});
      else this.#build();
    }

    #fresh() {
      let settle;
      this.#ready = new Promise((resolve, reject) => (settle = { resolve, reject }));
      this.#ready.catch(() => {}); // an unopened pad is also told as an "error" event
      this.#settle = settle;
    }

    #build() {
      this.#drop("the pad was replaced");
      if (!this.#settle) this.#fresh();
      const link = this.getAttribute("link") || "";
      const hash = link.indexOf("#");
      if (hash < 0 || link.slice(0, hash) !== `${RELAY}/p/`) {
        this.#fail(`link must be a pad link of ${RELAY}/ (with its #secret)`);
        return;
      }
      const query = new URLSearchParams();
      if (this.hasAttribute("readonly")) query.set("readonly", "1");
      if (this.getAttribute("theme") === "dark") query.set("theme", "dark");
      if (this.hasAttribute("toolbar")) query.set("toolbar", "1");
      const frame = document.createElement("iframe");
      frame.title = "blindpad pad";
      frame.referrerPolicy = "no-referrer";
      frame.allow = "clipboard-write";
      frame.addEventListener("load", () => {
        if (frame !== this.#frame) return;
        this.#send("hello", [{ name: this.getAttribute("name") || "" }]).catch(() => {});
      });
      frame.src = `${RELAY}/embed/?${query}${link.slice(hash)}`; // the secret: fragment only
      const style = document.createElement("style");
      style.textContent = STYLE;
      this.#root.replaceChildren(style, frame);
      this.#frame = frame;
    }

    #drop(why) {
      for (const { reject } of this.#calls.values()) reject(new Error(why));
      this.#calls.clear();
      if (!this.#frame) return;
      this.#frame.remove();
      this.#frame = null;
      this.#settled("reject", new Error(why));
    }

    #settled(how, value) {
      const settle = this.#settle;
      this.#settle = null;
      if (settle) settle[how](value);
    }

    #fail(message) {
      this.#settled("reject", new Error(message));
      this.dispatchEvent(new CustomEvent("error", { detail: { message } }));
    }

    async #call(cmd, ...args) {
      await this.ready;
      return this.#send(cmd, args);
    }

    #send(cmd, args) {
      const target = this.#frame && this.#frame.contentWindow;
      if (!target) return Promise.reject(new Error("the pad is not open"));
      const id = this.#next++;
      return new Promise((resolve, reject) => {
        this.#calls.set(id, { resolve, reject });
        target.postMessage({ blindpad: 1, id, cmd, args }, ORIGIN);
      });
    }

    #receive(e) {
      if (!this.#frame || e.source !== this.#frame.contentWindow || e.origin !== ORIGIN) return;
      const m = e.data;
      if (!m || m.blindpad !== 1) return;
      if (typeof m.id === "number") {
        const call = this.#calls.get(m.id);
        this.#calls.delete(m.id);
        if (call) m.ok ? call.resolve(m.value) : call.reject(new Error(m.error));
      } else if (typeof m.event === "string") {
        if (m.event === "ready") this.#settled("resolve", m.detail);
        if (m.event === "error") this.#settled("reject", new Error(m.detail && m.detail.message));
        this.dispatchEvent(new CustomEvent(m.event, { detail: m.detail }));
      }
    }
  }

  customElements.define("blindpad-pad", BlindpadPad);
})();
