/*
 * A desktop painter for streaming benchmarks and tests: paints a real X server (Xvnc) with
 * what users look at, at a steady frame rate, until it is killed.
 *
 *   painter [--mode text|photo|mixed] [--fps N] [--seed N] [--dump FILE]
 *
 *   text   scrolling pages of anti-aliased text (Xft, DejaVu Sans/Serif/Mono, several sizes
 *          and colours) on white, like an editor or a web page; the whole screen is repainted
 *          at the new scroll position every frame, as a browser does.
 *   photo  full-screen photo-like frames: smooth gradients, fine texture and soft moving
 *          shapes; every pixel changes every frame.
 *   mixed  a still text page with a photo-like region (640x360, like a video) changing
 *          every frame.
 *   --fps 0 paints one frame and then keeps still (for "does what was painted arrive
 *          intact" tests); --dump FILE then writes the painted window as raw RGBA
 *          (width*height*4 bytes, read back from the X server) to FILE.
 *
 * Prints "ready WIDTHxHEIGHT" on stdout once the first frame is on the server (XSync), then
 * "frames N" lines every second (frames painted so far). Uses the DISPLAY environment.
 *
 * Build: cc -O2 -o painter painter.c -lX11 -lXft -lm -I/usr/include/freetype2
 * (Debian: libx11-dev libxft-dev fonts-dejavu-core).
 */
#define _DEFAULT_SOURCE
#include <X11/Xlib.h>
#include <X11/Xutil.h>
#include <X11/Xft/Xft.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

enum { MODE_TEXT, MODE_PHOTO, MODE_MIXED };

static Display *dpy;
static Window win;
static Visual *visual;
static Colormap cmap;
static int W, H, depth;
static uint32_t rng_state = 12345;

static uint32_t rnd(void) {
  rng_state ^= rng_state << 13;
  rng_state ^= rng_state >> 17;
  rng_state ^= rng_state << 5;
  return rng_state;
}

/* ---------- photo-like frames ---------- */

static uint8_t *texture; /* TW x TH grey noise, smoothed: film grain / foliage */
#define TW 256
#define TH 256
static float sintab[1024];

static float fsin(float a) { /* a in turns */
  int i = (int)(a * 1024.0f) & 1023;
  return sintab[i];
}

static void init_photo(void) {
  for (int i = 0; i < 1024; i++) sintab[i] = sinf((float)i * 2.0f * (float)M_PI / 1024.0f);
  uint8_t *raw = malloc(TW * TH);
  texture = malloc(TW * TH);
  for (int i = 0; i < TW * TH; i++) raw[i] = rnd() & 255;
  /* Two box-blur passes of different radius: grain with some structure. */
  for (int y = 0; y < TH; y++)
    for (int x = 0; x < TW; x++) {
      int s = 0;
      for (int dy = -1; dy <= 1; dy++)
        for (int dx = -1; dx <= 1; dx++) s += raw[((y + dy) & (TH - 1)) * TW + ((x + dx) & (TW - 1))];
      texture[y * TW + x] = (uint8_t)(s / 9);
    }
  free(raw);
}

static inline uint32_t pack(XImage *img, int r, int g, int b) {
  if (r < 0) r = 0; else if (r > 255) r = 255;
  if (g < 0) g = 0; else if (g > 255) g = 255;
  if (b < 0) b = 0; else if (b > 255) b = 255;
  (void)img;
  return ((uint32_t)r << 16) | ((uint32_t)g << 8) | (uint32_t)b;
}

/* Paints a photo-like picture of w x h into img at (ox, oy), frame number t: a landscape
 * (sky gradient, rolling hills) with film grain, and soft out-of-focus lights moving over it. */
static void paint_photo(XImage *img, int ox, int oy, int w, int h, int t) {
  static float *skyr, *hills;
  static int cap;
  if (cap < w) {
    skyr = realloc(skyr, sizeof(float) * (size_t)w);
    hills = realloc(hills, sizeof(float) * (size_t)w);
    cap = w;
  }
  float ft = (float)t;
  for (int x = 0; x < w; x++) {
    float fx = (float)x / w;
    skyr[x] = 20 * fsin(fx * 0.7f + ft * 0.002f);
    hills[x] = 25 * fsin(fx * 1.3f + ft * 0.003f) + 15 * fsin(fx * 3.1f - ft * 0.005f);
  }
  int tx = (t * 3) & (TW - 1), ty = (t * 2) & (TH - 1);
  float horizon = 0.45f + 0.05f * fsin(ft * 0.004f);
  for (int y = 0; y < h; y++) {
    uint32_t *row = (uint32_t *)(img->data + (size_t)(oy + y) * img->bytes_per_line) + ox;
    const uint8_t *tex = texture + ((y + ty) & (TH - 1)) * TW;
    float fy = (float)y / h;
    if (fy < horizon) {
      float k = fy / horizon;
      int r0 = (int)(70 + 120 * k), g = (int)(120 + 90 * k), b = (int)(210 + 30 * k);
      for (int x = 0; x < w; x++) {
        int grain = (tex[(x + tx) & (TW - 1)] - 128) / 6;
        row[x] = pack(img, r0 + (int)skyr[x] + grain, g + grain, b + grain);
      }
    } else {
      float k = (fy - horizon) / (1 - horizon);
      int r0 = (int)(90 - 40 * k), g0 = (int)(110 - 30 * k), b = (int)(50 - 20 * k);
      for (int x = 0; x < w; x++) {
        int grain = (tex[(x + tx) & (TW - 1)] - 128) * 6 / 10;
        int hl = (int)hills[x];
        row[x] = pack(img, r0 + hl + grain, g0 + hl * 4 / 5 + grain, b + grain);
      }
    }
  }
  /* Soft shapes (out-of-focus lights / objects) moving across the picture. */
  for (int i = 0; i < 5; i++) {
    float cx = w * (0.5f + 0.42f * fsin(ft * (0.003f + 0.0011f * i) + i * 0.21f));
    float cy = h * (0.5f + 0.40f * fsin(ft * (0.0023f + 0.0007f * i) + i * 0.37f + 0.25f));
    float rad = h * (0.10f + 0.05f * i);
    int cr = 80 + 35 * i, cg = 200 - 30 * i, cb = 60 + 40 * (i % 3);
    int x0 = (int)(cx - rad), x1 = (int)(cx + rad), y0 = (int)(cy - rad), y1 = (int)(cy + rad);
    if (x0 < 0) x0 = 0;
    if (y0 < 0) y0 = 0;
    if (x1 > w) x1 = w;
    if (y1 > h) y1 = h;
    float inv = 1.0f / (rad * rad);
    for (int y = y0; y < y1; y++) {
      uint32_t *row = (uint32_t *)(img->data + (size_t)(oy + y) * img->bytes_per_line) + ox;
      float dy2 = (y - cy) * (y - cy);
      for (int x = x0; x < x1; x++) {
        float d2 = ((x - cx) * (x - cx) + dy2) * inv;
        if (d2 >= 1.0f) continue;
        int a = (int)((1.0f - d2) * (1.0f - d2) * 205); /* 0..205 of 256 */
        uint32_t p = row[x];
        int r = (int)(p >> 16 & 255), g = (int)(p >> 8 & 255), b = (int)(p & 255);
        row[x] = pack(img, r + ((cr - r) * a >> 8), g + ((cg - g) * a >> 8), b + ((cb - b) * a >> 8));
      }
    }
  }
}

/* ---------- text pages ---------- */

#define NFONTS 6
static const char *font_names[NFONTS] = {
    "DejaVu Sans:size=22:weight=bold", /* heading */
    "DejaVu Sans:size=11",             /* body */
    "DejaVu Serif:size=12",            /* article */
    "DejaVu Sans Mono:size=10",        /* code */
    "DejaVu Sans:size=9",              /* small print */
    "DejaVu Serif:size=16:slant=italic",
};
static XftFont *fonts[NFONTS];
#define NCOLOURS 6
static const char *colour_names[NCOLOURS] = {"#202020", "#1a0dab", "#006621", "#b3261e", "#5f6368", "#6a1b9a"};
static XftColor colours[NCOLOURS];

typedef struct {
  int font, colour, indent, height;
  char text[200];
} Line;
#define NLINES 400
static Line lines[NLINES];
static int doc_height;

static const char *words[] = {
    "the", "desktop", "broker", "session", "pool", "stream", "frame", "pixel", "gateway", "tunnel",
    "browser", "user", "image", "encoder", "quality", "latency", "bandwidth", "network", "screen", "window",
    "of", "and", "to", "in", "is", "for", "with", "on", "that", "by", "a", "an", "as", "it", "from",
    "configuration", "performance", "Guacamole", "VNC", "protocol", "compression", "anti-aliased", "glyphs",
    "rendering", "scrolling", "résumé", "naïve", "Größe", "café", "über", "déjà", "vu", "1280×720", "42",
    "2026-12-01", "€ 19.99", "(see below)", "—", "e.g.", "i.e.", "http://example.org/path", "README.md",
};
#define NWORDS (sizeof(words) / sizeof(words[0]))

static void make_sentence(char *out, size_t cap, int maxw, XftFont *f, int code) {
  out[0] = 0;
  size_t len = 0;
  if (code) {
    static const char *code_lines[] = {
        "const frame = await encoder.encode(rect, { quality: 80 });",
        "if (pixels.length > MAX_PIXELS) throw new Error('too big');",
        "for (let y = 0; y < height; y += TILE) {",
        "  sendImage(layer, x, y, png.toBuffer());",
        "}",
        "return { width, height, stride: width * 4 };",
        "    // TODO: reuse the buffer between frames",
        "export function startPainter(opts: PainterOptions): Painter {",
    };
    snprintf(out, cap, "%s", code_lines[rnd() % (sizeof(code_lines) / sizeof(code_lines[0]))]);
    return;
  }
  for (int i = 0; i < 40; i++) {
    const char *w = words[rnd() % NWORDS];
    char cand[200];
    snprintf(cand, sizeof cand, "%s%s%s", out, len ? " " : "", w);
    XGlyphInfo ext;
    XftTextExtentsUtf8(dpy, f, (const FcChar8 *)cand, (int)strlen(cand), &ext);
    if (ext.xOff > maxw) break;
    snprintf(out, cap, "%s", cand);
    len = strlen(out);
  }
  if (len && len + 1 < cap) out[0] = (char)(out[0] >= 'a' && out[0] <= 'z' ? out[0] - 32 : out[0]), strcat(out, ".");
}

static void init_text(void) {
  for (int i = 0; i < NFONTS; i++) {
    char pattern[128];
    snprintf(pattern, sizeof pattern, "%s:antialias=true:hinting=true:hintstyle=hintslight:rgba=none", font_names[i]);
    fonts[i] = XftFontOpenName(dpy, DefaultScreen(dpy), pattern);
    if (!fonts[i]) {
      fprintf(stderr, "painter: font %s not found\n", font_names[i]);
      exit(2);
    }
  }
  for (int i = 0; i < NCOLOURS; i++) XftColorAllocName(dpy, visual, cmap, colour_names[i], &colours[i]);
  int y = 0;
  for (int i = 0; i < NLINES; i++) {
    Line *l = &lines[i];
    int kind = rnd() % 20;
    if (i % 25 == 0 || kind == 0) l->font = 0, l->colour = 0;
    else if (kind < 4) l->font = 3, l->colour = (rnd() % 2) ? 2 : 0;
    else if (kind < 6) l->font = 4, l->colour = 4;
    else if (kind < 7) l->font = 5, l->colour = 5;
    else if (kind < 12) l->font = 2, l->colour = 0;
    else l->font = 1, l->colour = (kind == 12) ? 1 : (kind == 13) ? 3 : 0;
    l->indent = l->font == 3 ? 60 + 20 * (int)(rnd() % 3) : 40;
    make_sentence(l->text, sizeof l->text, W - l->indent - 40, fonts[l->font], l->font == 3);
    l->height = fonts[l->font]->ascent + fonts[l->font]->descent + (l->font == 0 ? 14 : 4);
    y += l->height;
  }
  doc_height = y;
}

/* Paints the document scrolled to `scroll` into the drawable region (0, 0, w, h). */
static void paint_text(XftDraw *draw, Pixmap pm, GC gc, int w, int h, int scroll) {
  XSetForeground(dpy, gc, WhitePixel(dpy, DefaultScreen(dpy)));
  XFillRectangle(dpy, pm, gc, 0, 0, (unsigned)w, (unsigned)h);
  scroll %= doc_height;
  int y = -scroll;
  for (int pass = 0; pass < 2 && y < h; pass++) {
    for (int i = 0; i < NLINES && y < h; i++) {
      Line *l = &lines[i];
      if (y + l->height > 0) {
        XftFont *f = fonts[l->font];
        if (l->font == 3) { /* code block background */
          XSetForeground(dpy, gc, 0xf1f3f4);
          XFillRectangle(dpy, pm, gc, l->indent - 10, y, (unsigned)(w - l->indent - 30), (unsigned)l->height);
        }
        XftDrawStringUtf8(draw, &colours[l->colour], f, l->indent, y + f->ascent + (l->font == 0 ? 10 : 2),
                          (const FcChar8 *)l->text, (int)strlen(l->text));
      }
      y += l->height;
    }
  }
}

/* ---------- main loop ---------- */

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv) {
  int mode = MODE_TEXT;
  double fps = 30;
  const char *dump = NULL;
  for (int i = 1; i < argc; i++) {
    if (!strcmp(argv[i], "--mode") && i + 1 < argc) {
      const char *m = argv[++i];
      mode = !strcmp(m, "photo") ? MODE_PHOTO : !strcmp(m, "mixed") ? MODE_MIXED : !strcmp(m, "text") ? MODE_TEXT : -1;
      if (mode < 0) { fprintf(stderr, "painter: unknown mode %s\n", m); return 2; }
    } else if (!strcmp(argv[i], "--fps") && i + 1 < argc) {
      fps = atof(argv[++i]);
    } else if (!strcmp(argv[i], "--seed") && i + 1 < argc) {
      rng_state = (uint32_t)strtoul(argv[++i], NULL, 10) | 1;
    } else if (!strcmp(argv[i], "--dump") && i + 1 < argc) {
      dump = argv[++i];
    } else {
      fprintf(stderr, "usage: painter [--mode text|photo|mixed] [--fps N] [--seed N] [--dump FILE]\n");
      return 2;
    }
  }
  dpy = XOpenDisplay(NULL);
  if (!dpy) { fprintf(stderr, "painter: cannot open display\n"); return 1; }
  int scr = DefaultScreen(dpy);
  W = DisplayWidth(dpy, scr);
  H = DisplayHeight(dpy, scr);
  depth = DefaultDepth(dpy, scr);
  visual = DefaultVisual(dpy, scr);
  cmap = DefaultColormap(dpy, scr);
  if (depth != 24 || visual->red_mask != 0xff0000 || visual->green_mask != 0xff00 || visual->blue_mask != 0xff) {
    fprintf(stderr, "painter: needs a depth 24 TrueColor screen (RGB 888)\n");
    return 1;
  }
  XSetWindowAttributes wa;
  wa.override_redirect = True;
  wa.background_pixmap = None;
  win = XCreateWindow(dpy, RootWindow(dpy, scr), 0, 0, (unsigned)W, (unsigned)H, 0, depth, InputOutput, visual,
                      CWOverrideRedirect | CWBackPixmap, &wa);
  XMapRaised(dpy, win);
  GC gc = XCreateGC(dpy, win, 0, NULL);
  Pixmap back = XCreatePixmap(dpy, win, (unsigned)W, (unsigned)H, (unsigned)depth);
  XftDraw *draw = XftDrawCreate(dpy, back, visual, cmap);

  XImage *img = NULL;
  int pw = 640, ph = 360, px = W - 640 - 40, py = 120;
  if (px < 0) px = 0, pw = W < 640 ? W : 640;
  if (py + ph > H) ph = H - py;
  init_photo();
  if (mode != MODE_PHOTO) init_text();
  {
    int iw = mode == MODE_PHOTO ? W : pw, ih = mode == MODE_PHOTO ? H : ph;
    char *data = malloc((size_t)iw * ih * 4);
    img = XCreateImage(dpy, visual, (unsigned)depth, ZPixmap, 0, data, (unsigned)iw, (unsigned)ih, 32, 0);
  }

  double period = fps > 0 ? 1.0 / fps : 0;
  double next = now(), last_report = next;
  long frames = 0;
  for (int t = 0;; t++) {
    if (mode == MODE_PHOTO) {
      paint_photo(img, 0, 0, W, H, t);
      XPutImage(dpy, win, gc, img, 0, 0, 0, 0, (unsigned)W, (unsigned)H);
    } else if (mode == MODE_TEXT) {
      paint_text(draw, back, gc, W, H, t * 9);
      XCopyArea(dpy, back, win, gc, 0, 0, (unsigned)W, (unsigned)H, 0, 0);
    } else {
      if (t == 0) {
        paint_text(draw, back, gc, W, H, 0);
        XCopyArea(dpy, back, win, gc, 0, 0, (unsigned)W, (unsigned)H, 0, 0);
      }
      paint_photo(img, 0, 0, pw, ph, t);
      XPutImage(dpy, win, gc, img, 0, 0, px, py, (unsigned)pw, (unsigned)ph);
    }
    XSync(dpy, False); /* never queue ahead of the server */
    frames++;
    if (t == 0) {
      printf("ready %dx%d\n", W, H);
      fflush(stdout);
      if (period == 0) {
        if (dump) {
          XImage *got = XGetImage(dpy, win, 0, 0, (unsigned)W, (unsigned)H, AllPlanes, ZPixmap);
          FILE *f = fopen(dump, "wb");
          if (!got || !f) { fprintf(stderr, "painter: cannot dump\n"); return 1; }
          for (int y = 0; y < H; y++)
            for (int x = 0; x < W; x++) {
              unsigned long p = XGetPixel(got, x, y);
              uint8_t rgba[4] = {(uint8_t)(p >> 16), (uint8_t)(p >> 8), (uint8_t)p, 255};
              fwrite(rgba, 1, 4, f);
            }
          fclose(f);
          XDestroyImage(got);
          printf("dumped\n");
          fflush(stdout);
        }
        for (;;) { /* keep still until killed; notice the server going away */
          struct timespec ts = {1, 0};
          nanosleep(&ts, NULL);
          XNoOp(dpy);
          XSync(dpy, False);
        }
      }
    }
    double n = now();
    if (n - last_report >= 1.0) {
      printf("frames %ld\n", frames);
      fflush(stdout);
      last_report = n;
    }
    next += period;
    if (next < n - period) next = n; /* fell behind: do not burst to catch up */
    double wait = next - n;
    if (wait > 0) {
      struct timespec ts = {(time_t)wait, (long)((wait - (time_t)wait) * 1e9)};
      nanosleep(&ts, NULL);
    }
  }
}
