/** A seeded PRNG (mulberry32): the same seed gives the same numbers in [0, 1). */
export declare function rng(seed: number): () => number
