// The editor's canvas and layer panel (layered/app/canvas.py). Gradio runs this as gr.HTML's js_on_load, with
// `element`, `trigger`, `props` and `watch`. The document arrives as props.value; gestures are drawn here at
// once, and each finished one goes to the server as one 'layer_edit' event in image pixels (one undo step).
const EDIT = 'layer_edit';
const HIT_ALPHA = 24; // alpha (0..255, times the layer's opacity) above which a click hits a layer
const DRAG_START = 3; // screen pixels a press moves before it is a drag rather than a click
const MAX_ZOOM = 4;
const THUMB = 40;

const stage = element.querySelector('#layer-canvas');
const board = element.querySelector('[data-role=board]');
const rows = element.querySelector('[data-role=rows]');
const empty = element.querySelector('[data-role=empty]');
const zoomLabel = element.querySelector('[data-role=zoom]');
const beforeButton = element.querySelector('[data-role=before]');

const images = new Map(); // preview id -> {url, img, alpha (Uint8ClampedArray, read on first hit test)}
let doc = null; // the newest value drawn
let selected = null;
let zoom = 1;
let before = false;
let gesture = null; // the press, drag or handle in progress on the canvas
let rowGesture = null; // the press or drag in progress in the layer panel
let renaming = null; // {index, input}: the name field open in the panel, kept across redraws
let lastNameClick = null; // {index, time}: two clicks on a name make a double-click, whatever redraws between
let redrawing = false;
let layerPool = new Map(); // preview id -> the <img> elements drawn last time: reused, so nothing is decoded again
let thumbPool = new Map();
let frameRequested = false;
let lastFrame = 0;

// What scripts, tests and the benchmark read: frame times of drags, server-confirmed edit latencies.
const probe = (window.layeredEditor = {frames: [], confirmations: [], pending: null, version: 0});
Object.defineProperties(probe, {zoom: {get: () => zoom}, selected: {get: () => selected}, doc: {get: () => doc}});

function send(op, data = {}) {
  probe.pending = {op, since: performance.now(), after: doc ? doc.version : 0};
  trigger(EDIT, {op, ...data});
}

// ---- the document from the server

function addImage(id, url) {
  if (images.has(id)) return;
  const img = new Image();
  img.decoding = 'async';
  img.src = url;
  images.set(id, {url, img, alpha: null});
}

function receive() {
  const value = props.value;
  if (!value || typeof value !== 'object') return;
  for (const [id, url] of Object.entries(value.images || {})) addImage(id, url);
  if (doc && value.version <= doc.version) return; // a late, older answer: its images are kept, not its state
  doc = value;
  selected = value.selected;
  before = Boolean(value.before);
  draw();
  probe.version = value.version;
  const pending = probe.pending;
  if (pending && value.version > pending.after) {
    probe.pending = null;
    whenDrawn().then(() => probe.confirmations.push({op: pending.op, ms: performance.now() - pending.since}));
  }
}

function whenDrawn() {
  const waits = [...board.querySelectorAll('img')].map((img) => (img.complete ? null : img.decode().catch(() => null)));
  return Promise.all(waits).then(() => new Promise((resolve) => requestAnimationFrame(() => resolve())));
}

// ---- drawing

function pooled(pool, next, id) {
  let img = pool.get(id)?.pop();
  if (!img) {
    img = document.createElement('img');
    img.decoding = 'async';
    img.draggable = false;
    img.src = images.get(id).url;
  }
  if (!next.has(id)) next.set(id, []);
  next.get(id).push(img);
  return img;
}

function layer(index) {
  return doc && index != null ? doc.layers[index] : null;
}

function fitZoom() {
  const width = Math.max(120, stage.clientWidth - 24);
  const height = Math.max(240, window.innerHeight * 0.72);
  return Math.min(width / doc.width, height / doc.height, MAX_ZOOM);
}

function place(el, x, y, width, height) {
  el.style.left = `${x * zoom}px`;
  el.style.top = `${y * zoom}px`;
  el.style.width = `${width * zoom}px`;
  el.style.height = `${height * zoom}px`;
}

function draw() {
  const has = doc && doc.width > 0;
  empty.style.display = has ? 'none' : '';
  board.style.display = has ? '' : 'none';
  beforeButton.setAttribute('aria-pressed', String(before));
  if (!has) {
    board.replaceChildren();
    rows.replaceChildren();
    return;
  }
  zoom = fitZoom();
  stage.dataset.zoom = String(zoom);
  zoomLabel.textContent = `${doc.width} × ${doc.height} · ${Math.round(zoom * 100)}%`;
  board.style.width = `${doc.width * zoom}px`;
  board.style.height = `${doc.height * zoom}px`;
  const drawn = [];
  if (before && doc.original) {
    const img = document.createElement('img');
    img.className = 'le-original';
    img.src = images.get(doc.original)?.url || '';
    img.alt = 'original';
    place(img, 0, 0, doc.width, doc.height);
    drawn.push(img);
  } else {
    const next = new Map();
    for (const item of doc.layers) {
      const image = item.image && images.get(item.image);
      const img = image ? pooled(layerPool, next, item.image) : document.createElement('img');
      img.className = 'le-layer';
      img.dataset.layerIndex = String(item.index);
      img.alt = item.name;
      img.style.opacity = String(item.opacity);
      img.style.display = item.visible && image ? '' : 'none';
      img.style.transform = '';
      place(img, item.x, item.y, item.width, item.height);
      drawn.push(img);
    }
    layerPool = next;
    drawn.push(makeBox());
  }
  board.replaceChildren(...drawn);
  drawRows();
  showSelection();
  if (gesture) preview();
}

function makeBox() {
  const box = document.createElement('div');
  box.className = 'le-box';
  box.dataset.role = 'box';
  for (const handle of ['nw', 'ne', 'sw', 'se', 'rot']) {
    const dot = document.createElement('div');
    dot.className = `le-handle le-${handle}`;
    dot.dataset.handle = handle;
    box.appendChild(dot);
  }
  return box;
}

function showSelection() {
  const box = board.querySelector('[data-role=box]');
  const item = layer(selected);
  if (box) {
    box.style.display = item && item.visible && !before ? '' : 'none';
    if (item) place(box, item.x, item.y, item.width, item.height);
  }
  for (const row of rows.children) {
    const on = Number(row.dataset.layerIndex) === selected;
    row.classList.toggle('selected', on);
    row.setAttribute('aria-selected', String(on));
  }
}

function selectLocal(index) {
  selected = index;
  showSelection();
}

// ---- the layer panel (top-first, as in Photoshop)

function drawRows() {
  const factor = THUMB / Math.max(doc.width, doc.height);
  const made = [];
  const next = new Map();
  for (const item of [...doc.layers].reverse()) {
    const row = document.createElement('div');
    row.className = 'le-row';
    row.dataset.layerIndex = String(item.index);
    row.setAttribute('role', 'option');
    const eye = document.createElement('button');
    eye.type = 'button';
    eye.className = 'le-eye';
    eye.dataset.role = 'eye';
    eye.textContent = item.visible ? '👁' : '–';
    eye.title = item.visible ? 'Hide layer (H)' : 'Show layer (H)';
    eye.setAttribute('aria-label', eye.title);
    const thumb = document.createElement('div');
    thumb.className = 'le-thumb';
    thumb.style.width = `${doc.width * factor}px`;
    thumb.style.height = `${doc.height * factor}px`;
    const image = item.image && images.get(item.image);
    if (image) {
      const small = pooled(thumbPool, next, item.image);
      small.alt = '';
      small.style.left = `${item.x * factor}px`;
      small.style.top = `${item.y * factor}px`;
      small.style.width = `${item.width * factor}px`;
      small.style.height = `${item.height * factor}px`;
      small.style.opacity = String(item.opacity);
      thumb.appendChild(small);
    }
    const meta = document.createElement('div');
    meta.className = 'le-meta';
    const name = document.createElement('span');
    name.className = 'le-name';
    name.dataset.role = 'name';
    name.textContent = item.name || 'layer';
    name.title = 'Double-click to rename';
    meta.appendChild(name);
    if (item.kind) {
      const kind = document.createElement('span');
      kind.className = 'le-kind';
      kind.textContent = item.kind;
      meta.appendChild(kind);
    }
    const opacity = document.createElement('input');
    opacity.type = 'range';
    opacity.min = '0';
    opacity.max = '100';
    opacity.value = String(Math.round(item.opacity * 100));
    opacity.className = 'le-opacity';
    opacity.dataset.role = 'opacity';
    opacity.title = `Opacity ${opacity.value}%`;
    opacity.setAttribute('aria-label', 'Opacity');
    row.append(eye, thumb, meta, opacity);
    made.push(row);
  }
  thumbPool = next;
  redrawing = true;
  rows.replaceChildren(...made);
  const name = renaming && rows.querySelector(`.le-row[data-layer-index="${renaming.index}"] [data-role=name]`);
  if (name) {
    name.replaceWith(renaming.input);
    renaming.input.focus();
  } else renaming = null;
  redrawing = false;
}

function rowOf(target) {
  const row = target.closest('.le-row');
  return row && rows.contains(row) ? row : null;
}

rows.addEventListener('click', (event) => {
  const row = rowOf(event.target);
  if (!row || !doc) return;
  const index = Number(row.dataset.layerIndex);
  if (event.target.closest('[data-role=eye]')) {
    send('visible', {index, visible: !doc.layers[index].visible});
  }
});

rows.addEventListener('input', (event) => {
  const row = rowOf(event.target);
  if (!row || event.target.dataset.role !== 'opacity') return;
  const img = board.querySelector(`img[data-layer-index="${row.dataset.layerIndex}"]`);
  if (img) img.style.opacity = String(Number(event.target.value) / 100); // live, before the edit is sent
});

rows.addEventListener('change', (event) => {
  const row = rowOf(event.target);
  if (!row || event.target.dataset.role !== 'opacity') return;
  send('opacity', {index: Number(row.dataset.layerIndex), opacity: Number(event.target.value) / 100});
});

function startRename(index) {
  const name = rows.querySelector(`.le-row[data-layer-index="${index}"] [data-role=name]`);
  if (!name || renaming) return;
  const input = document.createElement('input');
  input.type = 'text';
  input.className = 'le-rename';
  input.value = doc.layers[index].name;
  input.setAttribute('aria-label', 'Layer name');
  const finish = (keep) => {
    if (!renaming || renaming.input !== input) return;
    renaming = null;
    const text = input.value.trim();
    if (keep && text && text !== doc.layers[index].name) send('rename', {index, name: text});
    else drawRows();
  };
  input.addEventListener('keydown', (e) => {
    e.stopPropagation();
    if (e.key === 'Enter') finish(true);
    if (e.key === 'Escape') finish(false);
  });
  input.addEventListener('blur', () => redrawing || finish(true));
  renaming = {index, input};
  name.replaceWith(input);
  input.focus();
  input.select();
}

// Press a row: a click selects it; a drag moves it, and where it is dropped it takes that row's place.
rows.addEventListener('pointerdown', (event) => {
  const row = rowOf(event.target);
  if (!row || event.button !== 0 || event.target.closest('button, input')) return;
  const onName = Boolean(event.target.closest('[data-role=name]'));
  rowGesture = {index: Number(row.dataset.layerIndex), y: event.clientY, dragging: false, target: null, onName};
  row.setPointerCapture(event.pointerId);
});

rows.addEventListener('pointermove', (event) => {
  if (!rowGesture) return;
  if (!rowGesture.dragging && Math.abs(event.clientY - rowGesture.y) < DRAG_START) return;
  rowGesture.dragging = true;
  let target = null;
  for (const row of rows.children) {
    const box = row.getBoundingClientRect();
    if (event.clientY >= box.top && event.clientY < box.bottom) target = row;
  }
  if (!target) target = event.clientY < rows.getBoundingClientRect().top ? rows.firstElementChild : rows.lastElementChild;
  rowGesture.target = target ? Number(target.dataset.layerIndex) : null;
  for (const row of rows.children) {
    const index = Number(row.dataset.layerIndex);
    row.classList.toggle('le-drop-above', index === rowGesture.target && index > rowGesture.index);
    row.classList.toggle('le-drop-below', index === rowGesture.target && index < rowGesture.index);
    row.classList.toggle('le-dragging', index === rowGesture.index);
  }
});

rows.addEventListener('pointerup', () => {
  const done = rowGesture;
  rowGesture = null;
  if (!done) return;
  for (const row of rows.children) row.classList.remove('le-drop-above', 'le-drop-below', 'le-dragging');
  if (!done.dragging) {
    const now = performance.now();
    if (done.onName && lastNameClick && lastNameClick.index === done.index && now - lastNameClick.time < 500) {
      lastNameClick = null;
      startRename(done.index);
      return;
    }
    lastNameClick = done.onName ? {index: done.index, time: now} : null;
    selectLocal(done.index);
    if (done.index !== doc.selected) send('select', {index: done.index});
  } else if (done.target != null && done.target !== done.index) {
    send('reorder', {index: done.index, position: done.target});
  }
});

rows.addEventListener('pointercancel', () => {
  rowGesture = null;
});

// ---- the canvas: click, drag, handles

function toImage(event) {
  const box = board.getBoundingClientRect();
  return {x: (event.clientX - box.left) / zoom, y: (event.clientY - box.top) / zoom};
}

function alphaOf(image) {
  if (!image.alpha && image.img.naturalWidth > 0) {
    const canvas = document.createElement('canvas');
    canvas.width = image.img.naturalWidth;
    canvas.height = image.img.naturalHeight;
    const context = canvas.getContext('2d', {willReadFrequently: true});
    context.drawImage(image.img, 0, 0);
    const rgba = context.getImageData(0, 0, canvas.width, canvas.height).data;
    image.alpha = new Uint8ClampedArray(canvas.width * canvas.height);
    for (let i = 0; i < image.alpha.length; i++) image.alpha[i] = rgba[4 * i + 3];
  }
  return image.alpha;
}

function hits(item, point) {
  if (!item.visible || !item.image) return false;
  const lx = point.x - item.x;
  const ly = point.y - item.y;
  if (lx < 0 || ly < 0 || lx >= item.width || ly >= item.height) return false;
  const image = images.get(item.image);
  const alpha = image && alphaOf(image);
  if (!alpha) return true; // not decoded yet: its box counts
  const width = image.img.naturalWidth;
  const height = image.img.naturalHeight;
  const px = Math.min(width - 1, Math.floor((lx * width) / item.width));
  const py = Math.min(height - 1, Math.floor((ly * height) / item.height));
  return alpha[py * width + px] * item.opacity > HIT_ALPHA;
}

function hitTest(point) {
  for (let i = doc.layers.length - 1; i >= 0; i--) if (hits(doc.layers[i], point)) return i;
  return null;
}

function inBox(item, point) {
  return item && point.x >= item.x && point.y >= item.y && point.x < item.x + item.width && point.y < item.y + item.height;
}

stage.addEventListener('pointerdown', (event) => {
  if (!doc || !doc.width || before || event.button !== 0) return;
  stage.focus({preventScroll: true});
  const point = toImage(event);
  const handle = event.target.closest('.le-handle');
  const start = {point, screen: [event.clientX, event.clientY]};
  if (handle && layer(selected)) {
    gesture = {kind: handle.dataset.handle === 'rot' ? 'rotate' : 'scale', handle: handle.dataset.handle, index: selected, ...start};
  } else {
    const hit = hitTest(point);
    const index = hit ?? (inBox(layer(selected), point) ? selected : null);
    gesture = {kind: 'press', hit, index, ...start};
  }
  gesture.event = event;
  stage.setPointerCapture(event.pointerId);
  event.preventDefault();
});

stage.addEventListener('pointermove', (event) => {
  if (!gesture) return;
  gesture.event = event;
  if (gesture.kind === 'press') {
    const moved = Math.hypot(event.clientX - gesture.screen[0], event.clientY - gesture.screen[1]);
    if (moved < DRAG_START || gesture.index == null) return;
    gesture.kind = 'drag';
    if (gesture.index !== selected) selectLocal(gesture.index);
  }
  animate();
});

// While a drag or a handle is held, every animation frame draws where the pointer is.
function animate() {
  if (frameRequested) return;
  frameRequested = true;
  requestAnimationFrame(frame);
}

function frame(now) {
  frameRequested = false;
  if (!gesture || gesture.kind === 'press') {
    lastFrame = 0;
    return;
  }
  const started = performance.now();
  preview();
  if (lastFrame) probe.frames.push({interval: now - lastFrame, work: performance.now() - started});
  lastFrame = now;
  animate();
}

// The gesture's result, drawn on the layer's element and the box: `change()` in image pixels.
function change() {
  const item = layer(gesture.index);
  const event = gesture.event;
  const dxScreen = event.clientX - gesture.screen[0];
  const dyScreen = event.clientY - gesture.screen[1];
  if (gesture.kind === 'drag') return {dx: Math.round(dxScreen / zoom), dy: Math.round(dyScreen / zoom), item};
  const point = toImage(event);
  if (gesture.kind === 'rotate') {
    const cx = item.x + item.width / 2;
    const cy = item.y + item.height / 2;
    const from = Math.atan2(gesture.point.y - cy, gesture.point.x - cx);
    let degrees = ((Math.atan2(point.y - cy, point.x - cx) - from) * 180) / Math.PI;
    degrees = ((degrees + 540) % 360) - 180;
    if (event.shiftKey) degrees = Math.round(degrees / 15) * 15;
    return {degrees: Math.round(degrees * 10) / 10, item};
  }
  const west = gesture.handle.endsWith('w');
  const north = gesture.handle.startsWith('n');
  const ax = west ? item.x + item.width : item.x; // the opposite corner stays put
  const ay = north ? item.y + item.height : item.y;
  let sx = Math.max(1, Math.abs(point.x - ax)) / item.width;
  let sy = Math.max(1, Math.abs(point.y - ay)) / item.height;
  if (event.shiftKey) sx = sy = Math.max(sx, sy);
  return {sx, sy, ax, ay, item};
}

function preview() {
  if (!gesture || gesture.kind === 'press') return;
  const c = change();
  const img = board.querySelector(`img[data-layer-index="${gesture.index}"]`);
  const box = board.querySelector('[data-role=box]');
  const {item} = c;
  if (gesture.kind === 'drag') {
    for (const el of [img, box]) if (el) place(el, item.x + c.dx, item.y + c.dy, item.width, item.height);
  } else if (gesture.kind === 'rotate') {
    for (const el of [img, box]) if (el) el.style.transform = `rotate(${c.degrees}deg)`;
  } else {
    const x = c.ax + (item.x - c.ax) * c.sx;
    const y = c.ay + (item.y - c.ay) * c.sy;
    for (const el of [img, box]) if (el) place(el, x, y, item.width * c.sx, item.height * c.sy);
  }
}

stage.addEventListener('pointerup', (event) => {
  const done = gesture;
  if (!done) return;
  done.event = event;
  if (done.kind === 'press') {
    gesture = null;
    if (done.hit != null) {
      selectLocal(done.hit);
      send('select', {index: done.hit});
    } else if (selected != null) {
      selectLocal(null);
      send('deselect');
    }
    return;
  }
  const c = change();
  gesture = null;
  lastFrame = 0;
  if (done.kind === 'drag' && (c.dx || c.dy)) send('move', {index: done.index, dx: c.dx, dy: c.dy});
  else if (done.kind === 'rotate' && c.degrees) send('rotate', {index: done.index, degrees: -c.degrees}); // ours: counter-clockwise
  else if (done.kind === 'scale' && (c.sx !== 1 || c.sy !== 1)) send('scale', {index: done.index, sx: c.sx, sy: c.sy, ax: c.ax, ay: c.ay});
  else draw();
});

stage.addEventListener('pointercancel', () => {
  gesture = null;
  draw();
});

// ---- the keyboard, when the canvas has focus

function nudge(dx, dy) {
  const item = layer(selected);
  const img = board.querySelector(`img[data-layer-index="${selected}"]`);
  item.x += dx; // drawn at once; the server's answer redraws from the real stack
  item.y += dy;
  if (img) place(img, item.x, item.y, item.width, item.height);
  showSelection();
  send('move', {index: selected, dx, dy});
}

const ARROWS = {ArrowLeft: [-1, 0], ArrowRight: [1, 0], ArrowUp: [0, -1], ArrowDown: [0, 1]};

stage.addEventListener('keydown', (event) => {
  if (!doc || !doc.width) return;
  const mod = event.ctrlKey || event.metaKey;
  const key = event.key.length === 1 ? event.key.toLowerCase() : event.key;
  let handled = true;
  if (mod && key === 'z' && !event.shiftKey) send('undo');
  else if (mod && ((key === 'z' && event.shiftKey) || key === 'y')) send('redo');
  else if (key === 'Escape') {
    if (selected != null) send('deselect');
    selectLocal(null);
  } else if (selected == null || !layer(selected)) handled = false;
  else if (ARROWS[key] && !mod) {
    const step = event.shiftKey ? 10 : 1;
    nudge(ARROWS[key][0] * step, ARROWS[key][1] * step);
  } else if (key === 'Delete' || key === 'Backspace') send('delete', {index: selected});
  else if (mod && key === 'd') send('duplicate', {index: selected});
  else if (key === 'h' && !mod) send('visible', {index: selected, visible: !layer(selected).visible});
  else handled = false;
  if (handled) event.preventDefault();
});

beforeButton.addEventListener('click', () => {
  before = !before;
  draw();
  send('compare', {before});
});

new ResizeObserver(() => {
  if (doc && doc.width && !gesture && Math.abs(fitZoom() - zoom) > 1e-3) draw();
}).observe(stage);

watch('value', receive);
receive();
