// zonekeeper console: the little script its pages need (no inline script: CSP default-src 'self').
// A button with data-copy="ID" copies the text of the element with that id; a form (or
// submit button) with data-confirm="TEXT" is sent only once the user confirms TEXT.
"use strict";

function zkSelect(element) {
  var range = document.createRange();
  range.selectNodeContents(element);
  var selection = window.getSelection();
  selection.removeAllRanges();
  selection.addRange(range);
}

document.addEventListener("click", function (event) {
  var button = event.target.closest("[data-copy]");
  if (!button) {
    return;
  }
  var source = document.getElementById(button.getAttribute("data-copy"));
  if (!source) {
    return;
  }
  var copied = function () { button.textContent = "Copied"; };
  var fallback = function () {
    // No clipboard API (plain http off localhost): select the text, and copy it if allowed.
    zkSelect(source);
    if (document.execCommand("copy")) {
      copied();
    } else {
      button.textContent = "Selected: press Ctrl+C";
    }
  };
  if (navigator.clipboard && window.isSecureContext) {
    navigator.clipboard.writeText(source.textContent).then(copied, fallback);
  } else {
    fallback();
  }
});

document.addEventListener("submit", function (event) {
  var submitter = event.submitter;
  var holder = (submitter && submitter.hasAttribute("data-confirm")) ? submitter : event.target;
  var question = holder.getAttribute && holder.getAttribute("data-confirm");
  if (question && !window.confirm(question)) {
    event.preventDefault();
  }
});
