#!/usr/bin/env node
// Usage: rerank.js HOST:PORT MODEL QUERY DOC... ; prints {"model", "results": [{index, score}]} as JSON.
'use strict';

const {CrossEncoderClient} = require('./crossrank');

async function main() {
  const [target, model, query, ...documents] = process.argv.slice(2);
  const client = new CrossEncoderClient(target, {apiKey: process.env.CROSSRANK_API_KEY});
  try {
    const response = await client.rerank(query, documents, {model});
    const results = response.results.map((r) => ({index: r.index, score: r.score}));
    console.log(JSON.stringify({model: response.model, results}));
  } catch (error) {
    console.error(error.message);
    process.exitCode = 1;
  } finally {
    client.close();
  }
}

main();
