import CFaiss
