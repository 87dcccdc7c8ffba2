// A cited PDF passage on its page: the page drawn by the vendored pdf.js into a canvas, pdf.js's text layer over it,
// and the text items of the passage highlighted. Configured by the data- attributes of each [data-pdf-passage]
// element (search/passage.html); no inline script, so that a strict CSP can forbid them. The passage partial arrives
// by htmx into the ask page's panel, or as a page of its own: both are handled.

const started = new WeakSet();
let pdfjsLoading = null;

// pdf.js is loaded on the first PDF passage shown, not with every page of the site.
const loadPdfjs = (viewer) => {
  const absolute = (url) => new URL(url, document.baseURI).href; // import() takes a relative path for a package name
  pdfjsLoading ??= import(absolute(viewer.dataset.pdfjs)).then((pdfjs) => {
    pdfjs.GlobalWorkerOptions.workerSrc = absolute(viewer.dataset.pdfjsWorker);
    return pdfjs;
  });
  return pdfjsLoading;
};

// Letters and digits only, lower case, ligatures spelled out: what the extracted text and the PDF's text items agree
// on despite line breaks, hyphenation at line ends and spacing.
const comparable = (text) => text.normalize("NFKD").toLowerCase().replace(/[^\p{L}\p{N}]+/gu, "");

// The page's text as one comparable string, with the text item that each of its characters came from.
const pageLetters = (items) => {
  let letters = "";
  const itemOf = [];
  items.forEach((item, index) => {
    for (const character of item) {
      const kept = comparable(character);
      letters += kept;
      for (let i = 0; i < kept.length; i += 1) itemOf.push(index);
    }
  });
  return { letters, itemOf };
};

const PIECE = 24; // letters of passage looked for at a time: long enough to be found once on a page, short to fit
const MAX_SKIP = 200; // letters of page between two pieces of the passage that can still be part of it

// The passage's pieces followed in order through the page's letters, from one place where its first piece is found.
// A piece the page lacks (the passage runs onto the next page; a running header was left out at extraction) is
// passed over, as is one found too far on, which is the same words elsewhere on the page.
const follow = (page, pieces, first, at) => {
  let end = at + pieces[first].length;
  let matched = 1;
  for (const piece of pieces.slice(first + 1)) {
    const found = page.indexOf(piece, end);
    if (found < 0 || found - end > MAX_SKIP) continue;
    end = found + piece.length;
    matched += 1;
  }
  return { start: at, end, matched };
};

// Where on the page the passage lies: of the places its first piece is found, the one most of it follows.
const passageSpan = (page, passage) => {
  const pieces = [];
  for (let offset = 0; offset < passage.length; offset += PIECE) pieces.push(passage.slice(offset, offset + PIECE));
  const first = pieces.findIndex((piece) => page.includes(piece));
  if (first < 0) return null;
  let best = null;
  for (let at = page.indexOf(pieces[first]); at >= 0; at = page.indexOf(pieces[first], at + 1)) {
    const span = follow(page, pieces, first, at);
    if (best === null || span.matched > best.matched) best = span;
  }
  return best;
};

const highlightPassage = (textLayer, passage) => {
  const { letters, itemOf } = pageLetters(textLayer.textContentItemsStr);
  const span = passageSpan(letters, comparable(passage));
  if (span === null) return 0;
  const marked = new Set(itemOf.slice(span.start, span.end));
  marked.forEach((index) => textLayer.textDivs[index].classList.add("passage-highlight"));
  return marked.size;
};

const say = (viewer, text) => {
  const status = viewer.querySelector(".pdf-page-status");
  status.textContent = text;
  status.hidden = false;
  viewer.classList.add("failed");
};

const showPage = async (viewer) => {
  const sheet = viewer.querySelector(".pdf-page-sheet");
  const canvas = sheet.querySelector("canvas");
  const layer = sheet.querySelector(".textLayer");
  const pdfjs = await loadPdfjs(viewer);
  const pdf = await pdfjs.getDocument({
    url: viewer.dataset.pdfUrl,
    standardFontDataUrl: viewer.dataset.standardFonts,
    isEvalSupported: false, // no eval or new Function: a strict CSP forbids them
  }).promise;
  const page = await pdf.getPage(Number(viewer.dataset.page));
  const pageWidth = page.getViewport({ scale: 1 }).width;
  // The panel's width, whatever the screen: the page never makes anything scroll sideways.
  const scale = sheet.clientWidth / pageWidth;
  const viewport = page.getViewport({ scale });
  const pixels = window.devicePixelRatio || 1;
  canvas.width = Math.floor(viewport.width * pixels);
  canvas.height = Math.floor(viewport.height * pixels);
  sheet.style.setProperty("--total-scale-factor", String(scale));
  await page.render({
    canvasContext: canvas.getContext("2d"),
    viewport,
    transform: pixels === 1 ? null : [pixels, 0, 0, pixels, 0, 0],
  }).promise;
  const textLayer = new pdfjs.TextLayer({ textContentSource: page.streamTextContent(), container: layer, viewport });
  await textLayer.render();
  viewer.dataset.highlighted = String(highlightPassage(textLayer, viewer.dataset.passage));
  viewer.classList.add("rendered");
  // The canvas follows the panel's width by CSS; the text layer follows through the scale factor it is laid out in.
  new ResizeObserver(() => {
    if (sheet.clientWidth > 0) sheet.style.setProperty("--total-scale-factor", String(sheet.clientWidth / pageWidth));
  }).observe(sheet);
};

const startViewers = (root) => {
  const viewers = root.matches?.("[data-pdf-passage]") ? [root] : root.querySelectorAll("[data-pdf-passage]");
  for (const viewer of viewers) {
    if (started.has(viewer)) continue;
    started.add(viewer);
    showPage(viewer).catch((error) => {
      console.error(error);
      say(viewer, "The page could not be shown here; the passage is below, and the PDF opens with the link.");
    });
  }
};

document.addEventListener("htmx:load", (event) => startViewers(event.detail.elt));
startViewers(document);
