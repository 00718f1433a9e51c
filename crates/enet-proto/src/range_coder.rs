//! C ENet's datagram compressor: an adaptive order-2 PPM model driving a range coder.
//!
//! [`RangeCoder`] produces and accepts exactly the bytes of C ENet 1.3's
//! `enet_range_coder_compress` / `enet_range_coder_decompress` (the compressor a C host enables
//! with `enet_host_compress_with_range_coder`), so compressed datagrams interoperate with C
//! peers in both directions.
//!
//! # The model
//!
//! Every datagram is coded on its own: the model starts empty for each call, so the coder
//! keeps no state between datagrams (it only reuses its symbol arena to avoid reallocating).
//!
//! * Contexts are the last zero, one and two bytes. Each context is a binary search tree of
//!   the byte values seen after it, each node holding a frequency and the total frequency of
//!   its left subtree, so a value's cumulative frequency is found in one descent.
//! * A byte is coded in the longest context first. If that context has never seen it, an
//!   *escape* is coded and the next shorter context is tried, down to the order-0 root
//!   context, which gives every byte value a minimum frequency of 1 and so can code anything.
//!   An escape in the root ends the stream.
//! * After a byte is coded, every context on the way gains it (with a small increment), and
//!   contexts that escaped gain escape frequency. Frequencies are halved when a count or a
//!   context total grows too large. The increments are tuned for small datagrams.
//! * All contexts and symbols live in one arena of 4096 nodes; when it is nearly full the
//!   model restarts from an empty root mid-stream (both sides do so at the same byte).
//! * The coder is a 32-bit carry-less range coder: 24-bit top and 16-bit bottom thresholds,
//!   output one byte at a time, and a flush that writes the low end until it is zero.
//!
//! # Hostile input
//!
//! [`Compressor::decompress`] never panics, never writes more than `limit` bytes and always
//! terminates: every step of the main loop either emits a byte (bounded by `limit`) or ends,
//! and the renormalisation loop is bounded explicitly.
//!
//! ```
//! use enet_proto::range_coder::RangeCoder;
//! use enet_proto::Compressor;
//!
//! let mut coder = RangeCoder::new();
//! let datagram = b"hello hello hello hello hello hello hello hello".to_vec();
//! let mut packed = Vec::new();
//! let n = coder.compress(&[&datagram[..8], &datagram[8..]], datagram.len(), &mut packed).unwrap();
//! assert_eq!(n, packed.len());
//! assert!(n < datagram.len());
//!
//! let mut unpacked = Vec::new();
//! assert_eq!(coder.decompress(&packed, 4096, &mut unpacked), Some(datagram.len()));
//! assert_eq!(unpacked, datagram);
//! ```

use crate::Compressor;

/// Renormalisation shifts out the top byte while `low` and `low + range` agree on it (or the
/// range is below [`BOTTOM`]).
const TOP: u32 = 1 << 24;
/// Smallest range the coder keeps between symbols.
const BOTTOM: u32 = 1 << 16;

/// Frequency increment of a symbol in the root context.
const ROOT_SYMBOL_DELTA: u16 = 3;
/// Minimum frequency every byte value has in the root context.
const ROOT_SYMBOL_MINIMUM: u16 = 1;
/// Initial escape frequency of the root context.
const ROOT_ESCAPE_MINIMUM: u16 = 1;

/// Longest context, in bytes.
const SUBCONTEXT_ORDER: usize = 2;
/// Frequency increment of a symbol in a higher-order context.
const SUBCONTEXT_SYMBOL_DELTA: u16 = 2;
/// Escape frequency increment of a higher-order context that had to escape.
const SUBCONTEXT_ESCAPE_DELTA: u16 = 5;

/// Number of nodes in the symbol arena (the C coder's fixed array size).
const SYMBOL_CAPACITY: usize = 4096;

/// Upper bound on renormalisation rounds for one symbol. A well-formed stream needs at most a
/// handful; the bound only exists so hostile input cannot spin.
const MAX_NORMALISE_ROUNDS: u32 = 64;

/// Upper bound on the context chain walked for one byte (it is at most
/// [`SUBCONTEXT_ORDER`] long by construction; this only guards the loop).
const MAX_CONTEXT_CHAIN: usize = 16;

/// One arena node: a symbol in its parent context's tree, and the context it starts.
#[derive(Debug, Clone, Copy, Default)]
struct Symbol {
    /// Byte value of this symbol.
    value: u8,
    /// Frequency of this symbol in its context.
    count: u8,
    /// Frequency of this symbol plus everything in its left subtree.
    under: u16,
    /// Arena index of the left child (0 = none; index 0 is always the root context).
    left: u16,
    /// Arena index of the right child (0 = none).
    right: u16,
    /// Arena index of the tree root of the context this symbol starts (0 = empty context).
    symbols: u16,
    /// Escape frequency of that context.
    escapes: u16,
    /// Total frequency of that context (escapes + symbols + minimums).
    total: u16,
    /// Arena index of the same byte in the next shorter context.
    parent: u16,
}

/// Where the arena index of the symbol just coded must be recorded: either the prediction for
/// the next byte, or the `parent` link of the symbol coded one context deeper.
#[derive(Debug, Clone, Copy)]
enum ParentSlot {
    Predicted,
    Symbol(u16),
}

/// The PPM model for one datagram.
struct Model<'a> {
    symbols: &'a mut [Symbol],
    next: usize,
    predicted: u16,
    order: usize,
}

/// Result of looking a value up in (and adding it to) a context during encoding.
struct Coded {
    symbol: u16,
    under: u16,
    count: u16,
}

impl<'a> Model<'a> {
    fn new(symbols: &'a mut [Symbol]) -> Self {
        let mut model = Model {
            symbols,
            next: 0,
            predicted: 0,
            order: 0,
        };
        model.reset();
        model
    }

    /// Empties the model: a fresh root context at index 0.
    fn reset(&mut self) {
        self.next = 0;
        let root = self.create(0, 0).unwrap_or(0);
        let r = &mut self.symbols[usize::from(root)];
        r.escapes = ROOT_ESCAPE_MINIMUM;
        r.total = ROOT_ESCAPE_MINIMUM + 256 * ROOT_SYMBOL_MINIMUM;
        self.predicted = 0;
        self.order = 0;
    }

    /// Allocates a node; `None` if the arena is full (cannot happen: [`Model::advance`] restarts the model first).
    fn create(&mut self, value: u8, count: u16) -> Option<u16> {
        let index = self.next;
        let slot = self.symbols.get_mut(index)?;
        *slot = Symbol {
            value,
            count: count as u8,
            under: count,
            ..Symbol::default()
        };
        self.next += 1;
        u16::try_from(index).ok()
    }

    /// After each byte: shift the prediction to keep at most [`SUBCONTEXT_ORDER`] bytes of
    /// context, and restart the model when the arena is nearly full.
    fn advance(&mut self) {
        if self.order >= SUBCONTEXT_ORDER {
            self.predicted = self.symbols[usize::from(self.predicted)].parent;
        } else {
            self.order += 1;
        }
        if self.next >= SYMBOL_CAPACITY - SUBCONTEXT_ORDER {
            self.reset();
        }
    }

    fn set_parent(&mut self, slot: ParentSlot, symbol: u16) {
        match slot {
            ParentSlot::Predicted => self.predicted = symbol,
            ParentSlot::Symbol(s) => self.symbols[usize::from(s)].parent = symbol,
        }
    }

    /// Finds `value` in `context`'s tree, adding `update` to its frequency (creating it if
    /// absent), and returns its cumulative frequency `under` and its `count` before the
    /// update, both including `minimum` per byte value. A new symbol has `count == minimum`.
    fn encode_in(&mut self, context: u16, value: u8, update: u16, minimum: u16) -> Option<Coded> {
        let mut under = u16::from(value).wrapping_mul(minimum);
        let mut count = minimum;
        let ctx = usize::from(context);
        if self.symbols[ctx].symbols == 0 {
            let symbol = self.create(value, update)?;
            self.symbols[ctx].symbols = symbol;
            return Some(Coded {
                symbol,
                under,
                count,
            });
        }
        let mut node = self.symbols[ctx].symbols;
        // Each iteration descends one level of a tree with fewer than 4096 nodes.
        for _ in 0..SYMBOL_CAPACITY {
            let n = usize::from(node);
            let here = self.symbols[n];
            if value < here.value {
                self.symbols[n].under = here.under.wrapping_add(update);
                if here.left != 0 {
                    node = here.left;
                    continue;
                }
                let symbol = self.create(value, update)?;
                self.symbols[n].left = symbol;
                return Some(Coded {
                    symbol,
                    under,
                    count,
                });
            } else if value > here.value {
                under = under.wrapping_add(here.under);
                if here.right != 0 {
                    node = here.right;
                    continue;
                }
                let symbol = self.create(value, update)?;
                self.symbols[n].right = symbol;
                return Some(Coded {
                    symbol,
                    under,
                    count,
                });
            } else {
                count = count.wrapping_add(u16::from(here.count));
                under = under.wrapping_add(here.under.wrapping_sub(u16::from(here.count)));
                let s = &mut self.symbols[n];
                s.under = s.under.wrapping_add(update);
                s.count = s.count.wrapping_add(update as u8);
                return Some(Coded {
                    symbol: node,
                    under,
                    count,
                });
            }
        }
        None
    }

    /// Halves every frequency in the tree rooted at `root` and recomputes the `under` sums;
    /// returns the tree's new total frequency.
    ///
    /// Iterative (no recursion on hostile, degenerate trees): children are always created
    /// after their parent, so the arena holds a proper tree and a reversed pre-order visits
    /// every child before its parent.
    fn rescale_tree(&mut self, root: u16) -> u16 {
        let mut order = [0u16; SYMBOL_CAPACITY];
        let mut stack = [0u16; SYMBOL_CAPACITY];
        let mut sums = [0u16; SYMBOL_CAPACITY];
        let (mut visited, mut depth) = (0usize, 1usize);
        stack[0] = root;
        while depth > 0 && visited < SYMBOL_CAPACITY {
            depth -= 1;
            let node = stack[depth];
            order[visited] = node;
            visited += 1;
            let s = &mut self.symbols[usize::from(node)];
            s.count -= s.count >> 1;
            for child in [s.left, s.right] {
                if child != 0 && depth < SYMBOL_CAPACITY {
                    stack[depth] = child;
                    depth += 1;
                }
            }
        }
        for &node in order[..visited].iter().rev() {
            let n = usize::from(node);
            let s = self.symbols[n];
            let left = if s.left != 0 {
                sums[usize::from(s.left)]
            } else {
                0
            };
            let right = if s.right != 0 {
                sums[usize::from(s.right)]
            } else {
                0
            };
            let under = u16::from(s.count).wrapping_add(left);
            self.symbols[n].under = under;
            sums[n] = under.wrapping_add(right);
        }
        sums[usize::from(root)]
    }

    /// Halves a context's frequencies and recomputes its total.
    fn rescale(&mut self, context: u16, minimum: u16) {
        let ctx = usize::from(context);
        let root = self.symbols[ctx].symbols;
        let total = if root != 0 {
            self.rescale_tree(root)
        } else {
            0
        };
        let c = &mut self.symbols[ctx];
        c.escapes -= c.escapes >> 1;
        c.total = total.wrapping_add(c.escapes).wrapping_add(256 * minimum);
    }

    /// Bookkeeping after a higher-order context coded (or escaped) a byte.
    fn update_subcontext(&mut self, context: u16, count: u16, escaped: bool) {
        let c = &mut self.symbols[usize::from(context)];
        if escaped {
            c.escapes = c.escapes.wrapping_add(SUBCONTEXT_ESCAPE_DELTA);
            c.total = c.total.wrapping_add(SUBCONTEXT_ESCAPE_DELTA);
        }
        c.total = c.total.wrapping_add(SUBCONTEXT_SYMBOL_DELTA);
        if count > 0xFF - 2 * SUBCONTEXT_SYMBOL_DELTA || u32::from(c.total) > BOTTOM - 0x100 {
            self.rescale(context, 0);
        }
    }

    /// Bookkeeping after the root context coded a byte.
    fn update_root(&mut self, count: u16) {
        let c = &mut self.symbols[0];
        c.total = c.total.wrapping_add(ROOT_SYMBOL_DELTA);
        if count > 0xFF - 2 * ROOT_SYMBOL_DELTA + ROOT_SYMBOL_MINIMUM
            || u32::from(c.total) > BOTTOM - 0x100
        {
            self.rescale(0, ROOT_SYMBOL_MINIMUM);
        }
    }
}

/// The encoding half of the range coder.
struct Encoder<'o> {
    low: u32,
    range: u32,
    out: &'o mut Vec<u8>,
    limit: usize,
}

impl Encoder<'_> {
    fn emit(&mut self, byte: u8) -> Option<()> {
        if self.out.len() >= self.limit {
            return None;
        }
        self.out.push(byte);
        Some(())
    }

    fn encode(&mut self, under: u32, count: u32, total: u32) -> Option<()> {
        self.range /= total;
        self.low = self.low.wrapping_add(under.wrapping_mul(self.range));
        self.range = self.range.wrapping_mul(count);
        for _ in 0..MAX_NORMALISE_ROUNDS {
            if (self.low ^ self.low.wrapping_add(self.range)) >= TOP {
                if self.range >= BOTTOM {
                    return Some(());
                }
                self.range = self.low.wrapping_neg() & (BOTTOM - 1);
            }
            self.emit((self.low >> 24) as u8)?;
            self.range <<= 8;
            self.low <<= 8;
        }
        None
    }

    fn flush(&mut self) -> Option<()> {
        while self.low != 0 {
            self.emit((self.low >> 24) as u8)?;
            self.low <<= 8;
        }
        Some(())
    }
}

/// The decoding half of the range coder.
struct Decoder<'i> {
    low: u32,
    code: u32,
    range: u32,
    input: &'i [u8],
    pos: usize,
}

impl Decoder<'_> {
    fn next_byte(&mut self) -> u32 {
        match self.input.get(self.pos) {
            Some(&b) => {
                self.pos += 1;
                u32::from(b)
            }
            None => 0,
        }
    }

    fn seed(&mut self) {
        for _ in 0..4 {
            // Missing bytes leave zeros in the low end, like C ENet.
            let b = self.next_byte();
            self.code = (self.code << 8) | b;
        }
    }

    /// The frequency the current code falls on, given the context `total`, truncated to 16
    /// bits as in C ENet.
    fn read(&mut self, total: u16) -> u16 {
        self.range /= u32::from(total);
        (self.code.wrapping_sub(self.low) / self.range) as u16
    }

    fn decode(&mut self, under: u32, count: u32) -> Option<()> {
        self.low = self.low.wrapping_add(under.wrapping_mul(self.range));
        self.range = self.range.wrapping_mul(count);
        for _ in 0..MAX_NORMALISE_ROUNDS {
            if (self.low ^ self.low.wrapping_add(self.range)) >= TOP {
                if self.range >= BOTTOM {
                    return Some(());
                }
                self.range = self.low.wrapping_neg() & (BOTTOM - 1);
            }
            self.code = (self.code << 8) | self.next_byte();
            self.range <<= 8;
            self.low <<= 8;
        }
        None
    }
}

/// A symbol located while decoding.
struct Decoded {
    symbol: u16,
    value: u8,
    under: u16,
    count: u16,
}

impl Model<'_> {
    /// Looks up the symbol whose frequency interval holds `code` in a higher-order context
    /// (minimum 0), updating it. `None` if no symbol does, which C ENet treats as a corrupt
    /// stream.
    fn decode_in_subcontext(&mut self, context: u16, code: u16) -> Option<Decoded> {
        let mut node = self.symbols[usize::from(context)].symbols;
        if node == 0 {
            return None;
        }
        let code = i32::from(code);
        let mut under: u16 = 0;
        for _ in 0..SYMBOL_CAPACITY {
            let n = usize::from(node);
            let here = self.symbols[n];
            let after = i32::from(under.wrapping_add(here.under));
            let before = i32::from(here.count);
            if code >= after {
                under = under.wrapping_add(here.under);
                if here.right == 0 {
                    return None;
                }
                node = here.right;
            } else if code < after - before {
                self.symbols[n].under = here.under.wrapping_add(SUBCONTEXT_SYMBOL_DELTA);
                if here.left == 0 {
                    return None;
                }
                node = here.left;
            } else {
                let s = &mut self.symbols[n];
                s.under = s.under.wrapping_add(SUBCONTEXT_SYMBOL_DELTA);
                s.count = s.count.wrapping_add(SUBCONTEXT_SYMBOL_DELTA as u8);
                return Some(Decoded {
                    symbol: node,
                    value: here.value,
                    under: (after - before) as u16,
                    count: u16::from(here.count),
                });
            }
        }
        None
    }

    /// Looks up (or creates, since every byte value has a minimum frequency there) the symbol
    /// whose frequency interval holds `code` in the root context, updating it.
    ///
    /// With a minimum frequency of exactly 1 per byte value, a value missing from the tree
    /// sits at `code` itself: its cumulative frequency is `code` and its value is the
    /// neighbour's value offset by the distance (wrapping to a byte, as C ENet does).
    fn decode_in_root(&mut self, code: u16) -> Option<Decoded> {
        const _: () = assert!(ROOT_SYMBOL_MINIMUM == 1);
        const MIN: i32 = ROOT_SYMBOL_MINIMUM as i32;
        const UPDATE: u16 = ROOT_SYMBOL_DELTA;
        let code_i = i32::from(code);
        let mut node = self.symbols[0].symbols;
        if node == 0 {
            let value = code_i as u8;
            let under = code;
            let symbol = self.create(value, UPDATE)?;
            self.symbols[0].symbols = symbol;
            return Some(Decoded {
                symbol,
                value,
                under,
                count: ROOT_SYMBOL_MINIMUM,
            });
        }
        let mut under: u16 = 0;
        for _ in 0..SYMBOL_CAPACITY {
            let n = usize::from(node);
            let here = self.symbols[n];
            let after = i32::from(
                under
                    .wrapping_add(here.under)
                    .wrapping_add((u16::from(here.value) + 1) * ROOT_SYMBOL_MINIMUM),
            );
            let before = i32::from(here.count) + MIN;
            if code_i >= after {
                under = under.wrapping_add(here.under);
                if here.right != 0 {
                    node = here.right;
                    continue;
                }
                let value = (i32::from(here.value) + 1 + (code_i - after)) as u8;
                let under = code;
                let symbol = self.create(value, UPDATE)?;
                self.symbols[n].right = symbol;
                return Some(Decoded {
                    symbol,
                    value,
                    under,
                    count: ROOT_SYMBOL_MINIMUM,
                });
            } else if code_i < after - before {
                self.symbols[n].under = here.under.wrapping_add(UPDATE);
                if here.left != 0 {
                    node = here.left;
                    continue;
                }
                let gap = after - before - code_i - 1;
                let value = (i32::from(here.value) - 1 - gap) as u8;
                let under = code;
                let symbol = self.create(value, UPDATE)?;
                self.symbols[n].left = symbol;
                return Some(Decoded {
                    symbol,
                    value,
                    under,
                    count: ROOT_SYMBOL_MINIMUM,
                });
            } else {
                let s = &mut self.symbols[n];
                s.under = s.under.wrapping_add(UPDATE);
                s.count = s.count.wrapping_add(UPDATE as u8);
                return Some(Decoded {
                    symbol: node,
                    value: here.value,
                    under: (after - before) as u16,
                    count: ROOT_SYMBOL_MINIMUM + u16::from(here.count),
                });
            }
        }
        None
    }
}

/// C ENet's adaptive order-2 PPM range coder, byte-compatible with C ENet 1.3.
///
/// Holds only a reusable 4096-node arena (about 64 KiB); each call codes one datagram from
/// an empty model. Install it in a host with `HostConfig { compressor:
/// Some(Box::new(RangeCoder::new())), .. }` to talk to C hosts that called
/// `enet_host_compress_with_range_coder`.
#[derive(Clone)]
pub struct RangeCoder {
    symbols: Box<[Symbol]>,
}

impl std::fmt::Debug for RangeCoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RangeCoder").finish_non_exhaustive()
    }
}

impl Default for RangeCoder {
    fn default() -> Self {
        RangeCoder::new()
    }
}

impl RangeCoder {
    /// A coder with a fresh arena.
    pub fn new() -> RangeCoder {
        RangeCoder {
            symbols: vec![Symbol::default(); SYMBOL_CAPACITY].into_boxed_slice(),
        }
    }

    fn compress_into(&mut self, input: &[&[u8]], limit: usize, out: &mut Vec<u8>) -> Option<()> {
        let mut model = Model::new(&mut self.symbols);
        let mut enc = Encoder {
            low: 0,
            range: u32::MAX,
            out,
            limit,
        };
        for &value in input.iter().flat_map(|b| b.iter()) {
            let mut parent = ParentSlot::Predicted;
            let mut context = model.predicted;
            let mut found = false;
            let mut chain = 0;
            while context != 0 {
                chain += 1;
                if chain > MAX_CONTEXT_CHAIN {
                    return None;
                }
                let coded = model.encode_in(context, value, SUBCONTEXT_SYMBOL_DELTA, 0)?;
                model.set_parent(parent, coded.symbol);
                parent = ParentSlot::Symbol(coded.symbol);
                let ctx = model.symbols[usize::from(context)];
                let total = u32::from(ctx.total);
                if coded.count > 0 {
                    enc.encode(
                        u32::from(ctx.escapes) + u32::from(coded.under),
                        u32::from(coded.count),
                        total,
                    )?;
                } else if ctx.escapes > 0 && u32::from(ctx.escapes) < total {
                    enc.encode(0, u32::from(ctx.escapes), total)?;
                }
                model.update_subcontext(context, coded.count, coded.count == 0);
                if coded.count > 0 {
                    found = true;
                    break;
                }
                context = model.symbols[usize::from(context)].parent;
            }
            if !found {
                let coded = model.encode_in(0, value, ROOT_SYMBOL_DELTA, ROOT_SYMBOL_MINIMUM)?;
                model.set_parent(parent, coded.symbol);
                let root = model.symbols[0];
                enc.encode(
                    u32::from(root.escapes) + u32::from(coded.under),
                    u32::from(coded.count),
                    u32::from(root.total),
                )?;
                model.update_root(coded.count);
            }
            model.advance();
        }
        enc.flush()
    }

    fn decompress_into(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Option<()> {
        let mut model = Model::new(&mut self.symbols);
        let mut dec = Decoder {
            low: 0,
            code: 0,
            range: u32::MAX,
            input,
            pos: 0,
        };
        dec.seed();
        // Every round emits one byte (bounded by `limit`) or ends the stream.
        loop {
            let mut context = model.predicted;
            let mut hit: Option<(u16, Decoded)> = None;
            let mut chain = 0;
            while context != 0 {
                chain += 1;
                if chain > MAX_CONTEXT_CHAIN {
                    return None;
                }
                let ctx = model.symbols[usize::from(context)];
                if ctx.escapes == 0 || ctx.escapes >= ctx.total {
                    context = ctx.parent;
                    continue;
                }
                let code = dec.read(ctx.total);
                if code < ctx.escapes {
                    dec.decode(0, u32::from(ctx.escapes))?;
                    context = ctx.parent;
                    continue;
                }
                let d = model.decode_in_subcontext(context, code - ctx.escapes)?;
                dec.decode(
                    u32::from(ctx.escapes) + u32::from(d.under),
                    u32::from(d.count),
                )?;
                model.update_subcontext(context, d.count, false);
                hit = Some((context, d));
                break;
            }
            let (stop_at, decoded) = match hit {
                Some(h) => h,
                None => {
                    let root = model.symbols[0];
                    let code = dec.read(root.total);
                    if code < root.escapes {
                        // The end-of-stream escape: nothing follows, so there is no need to
                        // renormalise past it.
                        return Some(());
                    }
                    let d = model.decode_in_root(code - root.escapes)?;
                    dec.decode(
                        u32::from(root.escapes) + u32::from(d.under),
                        u32::from(d.count),
                    )?;
                    model.update_root(d.count);
                    (0, d)
                }
            };
            // Teach the byte to every context that escaped (or was skipped) above it.
            let mut parent = ParentSlot::Predicted;
            let mut patch = model.predicted;
            let mut chain = 0;
            while patch != stop_at {
                chain += 1;
                if chain > MAX_CONTEXT_CHAIN {
                    return None;
                }
                let coded = model.encode_in(patch, decoded.value, SUBCONTEXT_SYMBOL_DELTA, 0)?;
                model.set_parent(parent, coded.symbol);
                parent = ParentSlot::Symbol(coded.symbol);
                model.update_subcontext(patch, coded.count, coded.count == 0);
                patch = model.symbols[usize::from(patch)].parent;
            }
            model.set_parent(parent, decoded.symbol);
            if out.len() >= limit {
                return None;
            }
            out.push(decoded.value);
            model.advance();
        }
    }
}

impl Compressor for RangeCoder {
    /// Compresses like `enet_range_coder_compress`. Returns `None` when the output would
    /// exceed `limit` bytes, or would be empty (C ENet's "0 = not compressed"; an empty input
    /// always is). Empty buffers in `input` are skipped.
    fn compress(&mut self, input: &[&[u8]], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        out.clear();
        let done = self.compress_into(input, limit, out);
        match done {
            Some(()) if !out.is_empty() => Some(out.len()),
            _ => {
                out.clear();
                None
            }
        }
    }

    /// Decompresses like `enet_range_coder_decompress`. Returns `None` where C ENet returns 0:
    /// the output would exceed `limit`, the stream names a symbol its context does not have,
    /// the input is empty, or it decodes to nothing.
    fn decompress(&mut self, input: &[u8], limit: usize, out: &mut Vec<u8>) -> Option<usize> {
        out.clear();
        if input.is_empty() {
            return None;
        }
        out.reserve(limit.min(input.len().saturating_mul(8)).min(1 << 16));
        let done = self.decompress_into(input, limit, out);
        match done {
            Some(()) if !out.is_empty() => Some(out.len()),
            _ => {
                out.clear();
                None
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn compress(coder: &mut RangeCoder, parts: &[&[u8]], limit: usize) -> Option<Vec<u8>> {
        let mut out = vec![0xAA; 3]; // must be cleared
        let n = coder.compress(parts, limit, &mut out)?;
        assert_eq!(n, out.len());
        Some(out)
    }

    fn decompress(coder: &mut RangeCoder, input: &[u8], limit: usize) -> Option<Vec<u8>> {
        let mut out = vec![0xAA; 3];
        let n = coder.decompress(input, limit, &mut out);
        assert!(out.len() <= limit);
        assert_eq!(
            n,
            if out.is_empty() {
                None
            } else {
                Some(out.len())
            }
        );
        n.map(|_| out)
    }

    fn round_trip(data: &[u8]) {
        let mut coder = RangeCoder::new();
        let packed = compress(&mut coder, &[data], data.len() * 2 + 64).expect("compresses");
        assert_eq!(
            decompress(&mut coder, &packed, data.len()).as_deref(),
            Some(data)
        );
    }

    #[test]
    fn round_trips_fixed_inputs() {
        round_trip(b"a");
        round_trip(&[0]);
        round_trip(&[0xFF; 5000]);
        round_trip(&(0..=255u8).cycle().take(10_000).collect::<Vec<_>>());
        // Long enough for the model to restart several times when the arena fills.
        let noise: Vec<u8> = (0..40_000u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8)
            .collect();
        round_trip(&noise);
    }

    #[test]
    fn repetitive_data_shrinks() {
        let data = b"ENet ENet ENet ENet ENet ENet ENet ENet ENet ENet ENet ENet".repeat(10);
        let mut coder = RangeCoder::new();
        let packed = compress(&mut coder, &[&data], data.len()).unwrap();
        assert!(
            packed.len() * 4 < data.len(),
            "{} -> {}",
            data.len(),
            packed.len()
        );
    }

    #[test]
    fn empty_input_and_tight_limits_give_none() {
        let mut coder = RangeCoder::new();
        assert!(compress(&mut coder, &[], 100).is_none());
        assert!(compress(&mut coder, &[b"", b""], 100).is_none());
        assert!(decompress(&mut coder, &[], 100).is_none());
        let data = b"some bytes to squeeze, some bytes to squeeze";
        let n = compress(&mut coder, &[data], 1000).unwrap().len();
        assert!(compress(&mut coder, &[data], n - 1).is_none());
        assert!(compress(&mut coder, &[data], n).is_some());
        let packed = compress(&mut coder, &[data], n).unwrap();
        assert!(decompress(&mut coder, &packed, data.len() - 1).is_none());
        assert!(decompress(&mut coder, &packed, 0).is_none());
    }

    #[test]
    fn calls_are_independent() {
        let mut coder = RangeCoder::new();
        let a = compress(&mut coder, &[b"first datagram first datagram"], 100).unwrap();
        let _ = decompress(&mut coder, &[0x13, 0x37, 0xFF, 0x00, 0x42], 1000);
        let _ = compress(&mut coder, &[&[7u8; 3000]], 10_000);
        let again = compress(&mut coder, &[b"first datagram first datagram"], 100).unwrap();
        assert_eq!(a, again);
        assert_eq!(
            compress(
                &mut RangeCoder::new(),
                &[b"first datagram first datagram"],
                100
            )
            .unwrap(),
            a
        );
    }

    /// Hostile streams: no panic, no output past the limit, and termination (each case is a
    /// bounded amount of work; a hang would time the test out).
    #[test]
    fn malformed_input_is_contained() {
        let mut coder = RangeCoder::new();
        let mut state = 0x1234_5678_9ABC_DEF0u64;
        let mut next = || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        for round in 0..2000 {
            let len = (next() % 300) as usize + 1;
            let input: Vec<u8> = (0..len).map(|_| next() as u8).collect();
            let limit = match round % 4 {
                0 => 0,
                1 => (next() % 64) as usize,
                2 => 4096,
                _ => 1 << 20,
            };
            let _ = decompress(&mut coder, &input, limit);
        }
        // Long garbage with a huge limit: runs through arena restarts and rescaling.
        let long: Vec<u8> = (0..200_000).map(|_| next() as u8).collect();
        let _ = decompress(&mut coder, &long, 1 << 22);
        for fill in [0x00u8, 0xFF] {
            let _ = decompress(&mut coder, &vec![fill; 50_000], 1 << 22);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn proptest_round_trip(data in proptest::collection::vec(any::<u8>(), 1..3000)) {
            let mut coder = RangeCoder::new();
            let packed = compress(&mut coder, &[&data], data.len() * 2 + 64).unwrap();
            prop_assert_eq!(decompress(&mut coder, &packed, data.len()), Some(data));
        }

        #[test]
        fn proptest_round_trip_small_alphabet(picks in proptest::collection::vec(0usize..4, 1..4000)) {
            let data: Vec<u8> = picks.iter().map(|&i| [0u8, 1, 0x80, 0xFF][i]).collect();
            let mut coder = RangeCoder::new();
            let packed = compress(&mut coder, &[&data], data.len() * 2 + 64).unwrap();
            prop_assert_eq!(decompress(&mut coder, &packed, data.len()), Some(data));
        }

        #[test]
        fn proptest_split_does_not_matter(
            data in proptest::collection::vec(any::<u8>(), 1..1000),
            cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..5),
        ) {
            let mut points: Vec<usize> = cuts.iter().map(|c| c.index(data.len() + 1)).collect();
            points.sort_unstable();
            let mut parts = Vec::new();
            let mut from = 0;
            for p in points {
                parts.push(&data[from..p]);
                from = p;
            }
            parts.push(&data[from..]);
            let mut coder = RangeCoder::new();
            let whole = compress(&mut coder, &[&data], data.len() * 2 + 64);
            prop_assert_eq!(compress(&mut coder, &parts, data.len() * 2 + 64), whole);
        }

        #[test]
        fn proptest_garbage_never_exceeds_limit(
            input in proptest::collection::vec(any::<u8>(), 0..600),
            limit in 0usize..5000,
        ) {
            let mut coder = RangeCoder::new();
            let _ = decompress(&mut coder, &input, limit);
        }
    }
}
